"""`UADAModel`: the segmentation network with its UADA training step, and `build_uada_model`."""

import keras
import numpy as np
import tensorflow as tf

from uada.layers import domain_split
from uada.models import losses, schedules, step_guard
from uada.models.adaptation_model import AdaptationModel, build_segmentation_network
from uada.models.heads import build_domain_classifier
from uada.names import UADA_MODES


@keras.saving.register_keras_serializable(package="uada")
class UADAModel(AdaptationModel):
    """Semantic segmentation network R + S, trained with UADA against a domain classifier D.

    `Z = R(x)` (backbone + extension), `logits = S(Z)`, `D(Z)` a per-position domain logit. A
    training batch is `[x_s ; x_t]`: `num_source` labelled source images then the unlabelled target
    images; R is called inside `uada.layers.domain_split(num_source)` so that every normalization
    knows the split (DAN takes its statistics from the source part). One forward pass of R serves
    both updates of a step (Eq. 2 of the paper):

        D step: min over theta_d of L_dom(D(sg(Z) + sigma * n1))
        G step: min over theta_r, theta_s of
                L_seg(S(Z_s), y_s) + L_reg + lambda * ramp * L_conf(D'(Z + sigma * n2))

    where `sg` is stop_gradient, `D'` is D after the D step's update, `n1, n2 ~ N(0, 1)` fresh
    each update and `sigma = 0.1 * (1 - min(step / 20000, 1))` with `step` counting D and G steps.
    The original code ran R forward once per update (the D step and the G step each on its own
    forward pass, with the moving statistics updated by both); here the D step trains on the
    G step's `Z`, which saves a third of a step's compute, and the moving statistics are updated
    once per step. S is applied to the source part of `Z` only: its DAN takes its statistics from
    the source, so the source logits are the same as for the mixed batch.

    Modes:
        `"source_only"`: G step on source images only, no D, no target images (targets present in
            the data are ignored).
        `"multi_domain"`: the batch holds source and target images but there is no D and no
            confusion loss: only the normalization layers see the target images (Table 1).
        `"uada"`: both steps, 1:1, D first.

    Gradients are clipped element-wise to [-gradient_clip, gradient_clip] in adversarial
    training (5, as the original clipped inside its alternating updates only); `source_only` and
    `multi_domain` do not clip by default (`gradient_clip=5.0` makes `multi_domain` exactly
    `uada` with lambda 0 and without D).
    Under `tf.distribute` the gradients are summed over the replicas before clipping, losses that
    are means are divided by the number of replicas, and L_seg is divided by the global number of
    valid source pixels, so that a step equals the single-device step on the whole global batch.

    A step whose losses or (clipped) gradients are not finite, or whose labels are invalid, is
    skipped: no variable changes (moving statistics included; D's update, applied before the
    G step is found non-finite, is taken back with its optimizer's iteration and momentum, so
    that the noise schedule's D + G clock stays on even steps) and `skipped_steps` counts it;
    after `max_consecutive_skips` consecutive skips `fit` stops with `NonFiniteLossError`.
    Labels other than `0..num_classes-1` and 255 raise `tf.errors.InvalidArgumentError` before the
    loss is computed (under XLA, where assertions are compiled away, the step is skipped and `fit`
    raises the same error after it). These guards, the all-reduce and the loss scaling below are
    `uada.models.step_guard`; the step itself reads as Eq. 2.

    Mixed precision: built under a `"mixed_bfloat16"` or `"mixed_float16"` global dtype policy
    (`uada.runs.precision.set_precision`), the variables are float32 and R, S and D compute in
    the low precision; normalization statistics, the logits (S's last resize), D's logit and every
    loss are float32. Under float16 `compile` wraps both optimizers in
    `keras.optimizers.LossScaleOptimizer`: each update's loss is multiplied by its optimizer's
    dynamic scale, and its gradients are divided by it right after the all-reduce, before the
    finiteness check and the element-wise clip (so the clip bound holds for the true gradient).
    A step whose losses are finite but whose unscaled gradients are not is a float16 overflow:
    the step is skipped as above, the overflowing optimizer's scale is halved, and the step
    counts in `skipped_steps` but neither counts toward nor resets `max_consecutive_skips`
    (unless the scale was already below 1, where the scale cannot be the cause). The scale is
    doubled after `dynamic_growth_steps` (2000) finite steps, as in Keras; a step with a
    non-finite loss (bad input) leaves the scale alone. `fit` then also logs `loss_scale`
    (the G step's).

    Build it with `uada.models.build_uada_model`; train with `compile()` then `fit()` on a
    `tf.data.Dataset` of `((source_images, source_labels), target_images)` batches
    (`(source_images, source_labels)` in `"source_only"` mode). Images are float32 RGB in
    [0, 255], `[B, H, W, 3]`; labels int `[B, H, W]` with 255 = ignore; the source batch size must
    be static (batch with `drop_remainder=True`). Under `tf.distribute` each replica receives its
    own source-first batch.

    Args:
        representation: R, a `keras.Model` images -> Z.
        segmentation_head: S, a `keras.Model` Z -> logits at the image size.
        domain_classifier: D, a `keras.Model` Z -> `[N, h, w, 1]` logits; required in `"uada"`
            mode and `None` otherwise.
        mode: one of `UADA_MODES`. Defaults to `"uada"`.
        num_classes: number of classes. Defaults to 19.
        lambda_conf: weight of the confusion loss. Defaults to 0.01.
        steps_per_epoch: G steps per epoch, for the ramp. Defaults to 1487.
        ramp_epochs: epochs during which the confusion loss has weight 0. Defaults to 1.
        noise_sigma: initial instance-noise standard deviation. Defaults to 0.1.
        noise_decay_steps: steps (D + G) until the noise is 0. Defaults to 20000.
        l2_regularization: coefficient `l2` of `l2 * sum(w^2)` over the conv kernels of R and S
            and the biases of S's logits and their upsampling (the original's regularizer of the
            classifier's variable scope reaches those biases too).
            Defaults to 8.5e-5 (= 0.00017 / 2).
        gradient_clip: element-wise gradient bound, `None` for no clipping, or `"auto"` (the
            original's): 5 in `"uada"`, none in `"source_only"` and `"multi_domain"`.
        max_consecutive_skips: consecutive skipped steps after which `fit` raises. Defaults to 10.
        seed: seed of the instance noise. Defaults to 0.
        **kwargs: base `keras.Model` arguments (`name`).

    Attributes:
        representation, segmentation_head, domain_classifier: R, S and D (D is `None` unless
            `"uada"`).
        segmenter: the inference model, images `[N, H, W, 3]` in [0, 255] -> logits
            `[N, H, W, num_classes]`; no domain input. Saveable with `.keras`.
        seg_optimizer, domain_optimizer: set by `compile()` (`seg_optimizer` is also
            `optimizer`).

    Metrics (`fit` logs): `loss` (the G objective), `seg_loss`, `lr`, `skipped_steps`, and in
    `"uada"` mode `domain_loss`, `confusion_loss` (unweighted), `domain_accuracy`, `sigma` and
    two diagnostics of the adversarial game, computed from the G step's own forward and
    backward pass (no extra pass):
    `confusion_clipped_fraction`, the fraction of target positions whose confusion term D'
    clips (no gradient: `losses.confusion_clipped_fraction`), and `confusion_gradient_ratio`,
    `||lambda * ramp * dL_conf/dZ|| / ||dL_seg/dZ||` (Frobenius norms over Z, this replica's
    batch), the size of the confusion gradient that actually reaches R relative to the
    segmentation gradient; it is 0 during the ramp.

    Reference:
        Romijnders, Meletis, Dubbelman. *A Domain Agnostic Normalization Layer for Unsupervised
        Adversarial Domain Adaptation.* WACV 2019, Eq. 2.
    """

    # The adversarial game's metrics (`"uada"` mode), in log order.
    _UADA_METRIC_NAMES = (
        "domain_loss", "confusion_loss", "domain_accuracy", "confusion_clipped_fraction",
        "confusion_gradient_ratio",
    )  # fmt: skip
    bar_metric_names = ("domain_loss", "domain_accuracy")

    def __init__(self, representation, segmentation_head, domain_classifier=None, *, mode="uada",
                 num_classes=19, lambda_conf=0.01, steps_per_epoch=schedules.STEPS_PER_EPOCH,
                 ramp_epochs=1, noise_sigma=0.1, noise_decay_steps=20000,
                 l2_regularization=8.5e-5, gradient_clip="auto", max_consecutive_skips=10,
                 seed=0, **kwargs):  # fmt: skip
        _check_mode(mode)
        if (domain_classifier is None) == (mode == "uada"):
            raise ValueError(
                f"`domain_classifier` is required in 'uada' mode and must be None otherwise. "
                f"Received: mode={mode!r}, domain_classifier={domain_classifier!r}"
            )
        if gradient_clip == "auto":
            gradient_clip = 5.0 if mode == "uada" else None
        if lambda_conf < 0:
            raise ValueError(f"`lambda_conf` must be >= 0. Received: lambda_conf={lambda_conf!r}")
        self.mode = mode  # before the frame's set-up, which makes the mode's metrics
        super().__init__(
            representation, segmentation_head, num_classes=num_classes,
            steps_per_epoch=steps_per_epoch, l2_regularization=l2_regularization,
            gradient_clip=gradient_clip, max_consecutive_skips=max_consecutive_skips, seed=seed,
            **kwargs,
        )  # fmt: skip
        self.domain_classifier = domain_classifier
        self.lambda_conf = float(lambda_conf)
        self.ramp_epochs = ramp_epochs
        self.noise_sigma = float(noise_sigma)
        self.noise_decay_steps = int(noise_decay_steps)

    @property
    def method_metric_names(self):
        return self._UADA_METRIC_NAMES if self.mode == "uada" else ()

    # ----------------------------------------------------------------------------------------
    # Training

    def compile(self, seg_optimizer=None, domain_optimizer=None, **kwargs):
        """Configures training; builds both optimizers on their variables.

        Args:
            seg_optimizer: optimizer of the G step (R and S). Defaults to SGD, momentum 0.9,
                `learning_rate` multiplied by `decay_factor` after each of `decay_epochs`.
            domain_optimizer: optimizer of the D step (`"uada"` mode only); the same default.
            **kwargs: `learning_rate` (0.01), `decay_epochs` ((9, 16), the paper's text),
                `decay_factor` (0.5), `steps_per_execution`, `jit_compile`, `run_eagerly`: as
                `uada.models.adaptation_model.AdaptationModel.compile`'s.

        Under a `"mixed_float16"` policy (the model's compute dtype is float16) both optimizers
        are wrapped in `keras.optimizers.LossScaleOptimizer` (see "Mixed precision" in the
        class docstring).
        """
        if self.mode != "uada" and domain_optimizer is not None:
            raise ValueError(
                f"`domain_optimizer` is only used in 'uada' mode. Received: mode={self.mode!r}, "
                f"domain_optimizer={domain_optimizer!r}"
            )
        super().compile(seg_optimizer, domain_optimizer, **kwargs)

    def _default_domain_optimizer(self, learning_rate, decay_epochs, decay_factor):
        return schedules.sgd(
            learning_rate,
            steps_per_epoch=self.steps_per_epoch,
            decay_epochs=decay_epochs,
            factor=decay_factor,
            name="domain_sgd",
        )

    @property
    def log_names(self):
        """The names of `train_step`'s logs in their order, but the float16 `loss_scale`: the
        metrics' means (`metrics`), `lr`, the step's `sigma` (`"uada"` only), `skipped_steps`."""
        step = ("lr", "sigma") if self.mode == "uada" else ("lr",)
        return (*(metric.name for metric in self.metrics), *step, "skipped_steps")

    @property
    def domain_variables(self):
        if self.domain_classifier is None:
            return []
        return self.domain_classifier.trainable_variables

    def _unpack(self, data):
        """`((source_images, source_labels), target_images)`, or `(source_images,
        source_labels)` in `"source_only"` mode, -> `(source_images, source_labels,
        target_images or None)`; a source-only model never sees target images."""
        source_images, source_labels, target_images = super()._unpack(
            data, needs_target=self.mode != "source_only"
        )
        if self.mode == "source_only":
            target_images = None
        return source_images, source_labels, target_images

    def _step(self, data):
        """One step of Eq. 2 (class docstring); the guards are `uada.models.step_guard`'s.

        Returns the logs `fit` shows (`_logs`)."""
        start = self._start_step(data)
        num_source = start.num_source  # per replica
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        step, g_step = self._step_counts()
        logs, d_overflow, d_metrics = {}, tf.constant(False), {}

        with tf.GradientTape() as tape:
            with domain_split(num_source if start.has_target else None):
                z = self.representation(start.images, training=True)  # Z = R([x_s; x_t])
            with domain_split(None):  # S's DAN on source rows only: the same source logits
                logits = self.segmentation_head(z[:num_source], training=True)
            seg_loss, global_seg_loss = self._segmentation_loss(start.source_labels, logits)
            reg_loss = losses.l2_regularization(self._l2_weights, self.l2_regularization)
            g_loss = seg_loss + reg_loss / replicas  # this replica's share of the G objective
            finite = tf.math.is_finite(global_seg_loss) & tf.equal(start.invalid_labels, 0)
            if self.mode == "uada":
                with tape.stop_recording():  # the D step, on sg(Z)
                    finite, d_overflow, d_metrics = self._domain_step(
                        tf.stop_gradient(z), num_source, step, finite, logs
                    )
                # L_conf goes through D', D as the D step left it, with fresh noise n2.
                conf_logits = self.domain_classifier(self._with_noise(z, step + 1), training=True)
                conf_loss = losses.confusion_loss(conf_logits, num_source)
                ramp = schedules.confusion_ramp(g_step, ramp_steps=self._ramp_steps)
                g_loss = g_loss + self.lambda_conf * ramp * conf_loss / replicas
            scaled_g_loss = self.seg_optimizer.scale_loss(g_loss)

        g_variables = self.generator_variables
        # The gradient with respect to Z comes from the same backward pass (diagnostics only).
        *g_grads, z_grad = tape.gradient(scaled_g_loss, g_variables + [z])
        g_grads, g_grads_finite = step_guard.reduce_gradients(
            g_grads, self.seg_optimizer, self.gradient_clip
        )
        total = step_guard.sum_over_replicas(g_loss)
        g_losses_finite = finite & tf.math.is_finite(total)
        diagnostics = {}
        if self.mode == "uada":
            diagnostics = {
                **d_metrics,
                "confusion_loss": conf_loss,
                "confusion_clipped_fraction": losses.confusion_clipped_fraction(
                    conf_logits, num_source
                ),
                "confusion_gradient_ratio": _confusion_gradient_ratio(z_grad, num_source),
            }
        applied, g_overflow = step_guard.apply_or_skip(
            self.seg_optimizer, g_grads, g_variables,
            losses_finite=g_losses_finite, grads_finite=g_grads_finite,
        )  # fmt: skip
        self._end_step(start, applied, d_overflow | g_overflow)
        self._update_metrics(applied, total, global_seg_loss, diagnostics)
        return self._logs(start.learning_rate, logs)

    def _domain_step(self, z, num_source, step, finite, logs):
        """The D step of Eq. 2 on `z` = sg(Z): min over theta_d of L_dom(D(z + sigma * n1)).

        `finite` says whether the G step's losses so far are finite (a step is applied whole or
        not at all). Returns `(finite, overflow, metrics)`, `metrics` the step's `domain_loss`
        and `domain_accuracy` (counted only if the whole step is applied); adds `sigma` to `logs`.
        """
        logs["sigma"] = self._sigma(step)
        noisy_z = self._with_noise(z, step)

        def loss():
            d_logits = self.domain_classifier(noisy_z, training=True)  # [N, h, w, 1]
            return losses.domain_loss(d_logits, num_source), d_logits

        finite, overflow, d_loss, d_logits = self._domain_update(loss, finite)
        accuracy = losses.pooled_domain_accuracy(d_logits, num_source)
        return finite, overflow, {"domain_loss": d_loss, "domain_accuracy": accuracy}

    def _step_counts(self):
        """`(step, g_step)`: D + G steps taken (the noise schedule's clock) and G steps taken."""
        d_iterations = self.domain_optimizer.iterations if self.mode == "uada" else 0
        g_iterations = self.seg_optimizer.iterations
        return tf.cast(d_iterations, tf.int64) + tf.cast(g_iterations, tf.int64), g_iterations

    @property
    def _ramp_steps(self):
        return int(round(self.ramp_epochs * self.steps_per_epoch))

    def _sigma(self, step):
        return schedules.instance_noise_sigma(
            step, initial_sigma=self.noise_sigma, decay_steps=self.noise_decay_steps
        )

    def _with_noise(self, z, step):
        """`z + sigma * n`: the instance noise of the update numbered `step` (D and G counted)."""
        return z + tf.cast(self._sigma(step), z.dtype) * self._noise(z, step)

    def _noise(self, like, step):
        """N(0, 1) noise, a function of (seed, step, replica): fresh each update and replica."""
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        seed = tf.stack(
            [
                tf.cast(step, tf.int64),
                tf.cast(self.seed, tf.int64) * 1024 + tf.cast(replica, tf.int64),
            ]
        )
        return tf.random.stateless_normal(tf.shape(like), seed=seed, dtype=like.dtype)

    # ----------------------------------------------------------------------------------------
    # Serialization

    def get_config(self):
        config = {
            "name": self.name,
            "mode": self.mode,
            "num_classes": self.num_classes,
            "lambda_conf": self.lambda_conf,
            "steps_per_epoch": self.steps_per_epoch,
            "ramp_epochs": self.ramp_epochs,
            "noise_sigma": self.noise_sigma,
            "noise_decay_steps": self.noise_decay_steps,
            "l2_regularization": self.l2_regularization,
            "gradient_clip": self.gradient_clip,
            "max_consecutive_skips": self.max_consecutive_skips,
            "seed": self.seed,
        }
        for key in ("representation", "segmentation_head", "domain_classifier"):
            part = getattr(self, key)
            config[key] = None if part is None else keras.saving.serialize_keras_object(part)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("representation", "segmentation_head", "domain_classifier"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def build_uada_model(mode="uada", backbone="resnet50", norm="dan", output_stride=8, weights=None,
                     image_size=(384, 768), num_classes=19, lambda_conf=0.01, *,
                     synchronized=None, dan_target_epsilon=None, **kwargs):  # fmt: skip
    """Builds the UADA segmentation model: R (backbone + extension), S and, in `"uada"` mode, D.

    Args:
        mode: `"source_only"`, `"multi_domain"` or `"uada"` (see `UADAModel`).
        backbone, norm, output_stride, weights, image_size, num_classes, synchronized,
            dan_target_epsilon: R and S's (`uada.models.adaptation_model.
            build_segmentation_network`): `"resnet50"` or `"resnet_tiny"`, R's normalization
            (S always uses DAN), 8 (the paper), 16 or 32, `None`, `"imagenet"` or a weights
            file, `(H, W)` (defaults to (384, 768)), 19 classes, synchronized statistics under a
            strategy of several replicas, DAN's target epsilon (`None` for 1e-5).
        lambda_conf: weight of the confusion loss. Defaults to 0.01.
        **kwargs: the other `UADAModel` arguments (`steps_per_epoch`, `ramp_epochs`,
            `noise_sigma`, `noise_decay_steps`, `l2_regularization`, `gradient_clip`,
            `max_consecutive_skips`, `seed`, `name`).

    Returns:
        A `UADAModel`, not compiled.
    """
    _check_mode(mode)  # before building anything
    representation, head = build_segmentation_network(
        backbone, norm, output_stride, weights, image_size, num_classes,
        synchronized=synchronized, dan_target_epsilon=dan_target_epsilon,
    )  # fmt: skip
    domain_classifier = build_domain_classifier() if mode == "uada" else None
    kwargs.setdefault("name", f"uada_{mode}")
    return UADAModel(
        representation, head, domain_classifier, mode=mode, num_classes=num_classes,
        lambda_conf=lambda_conf, **kwargs,
    )  # fmt: skip


def _check_mode(mode):
    if mode not in UADA_MODES:
        raise ValueError(f"`mode` must be one of {UADA_MODES}. Received: mode={mode!r}")


def _confusion_gradient_ratio(z_grad, num_source):
    """`||lambda * ramp * dL_conf/dZ|| / ||dL_seg/dZ||` from `z_grad`, the G objective's
    gradient with respect to Z `[N, h, w, C]` (float32 scalar).

    S sees only the source rows of Z, D is per-position (1x1 convs, no normalization: no
    coupling between samples) and L_conf is 0 on source positions, and L_reg does not depend on
    Z; so the source rows of `z_grad` are dL_seg/dZ and its target rows lambda * ramp *
    dL_conf/dZ, exactly. A loss scale multiplies both and cancels.
    """
    z_grad = tf.cast(z_grad, tf.float32)
    seg_norm = tf.norm(tf.reshape(z_grad[:num_source], [-1]))
    conf_norm = tf.norm(tf.reshape(z_grad[num_source:], [-1]))
    return conf_norm / tf.maximum(seg_norm, np.finfo(np.float32).tiny)
