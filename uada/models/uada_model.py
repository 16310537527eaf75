"""`UADAModel`: the segmentation network with its UADA training step, and `build_uada_model`."""

import keras
import numpy as np
import tensorflow as tf

from uada.layers import domain_split
from uada.models import framework_internals, losses, schedules, step_guard
from uada.models.backbones import build_backbone
from uada.models.heads import (
    build_domain_classifier,
    build_representation,
    build_segmentation_head,
)
from uada.names import MODES

# S's layers whose bias L2 also reaches (docs/FIDELITY.md, *Training*).
_REGULARIZED_BIASES = ("logits_conv", "logits_upsample")


@keras.saving.register_keras_serializable(package="uada")
class UADAModel(keras.Model):
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
        mode: one of `MODES`. Defaults to `"uada"`.
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

    def __init__(self, representation, segmentation_head, domain_classifier=None, *, mode="uada",
                 num_classes=19, lambda_conf=0.01, steps_per_epoch=schedules.STEPS_PER_EPOCH,
                 ramp_epochs=1, noise_sigma=0.1, noise_decay_steps=20000,
                 l2_regularization=8.5e-5, gradient_clip="auto", max_consecutive_skips=10,
                 seed=0, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        _check_mode(mode)
        if (domain_classifier is None) == (mode == "uada"):
            raise ValueError(
                f"`domain_classifier` is required in 'uada' mode and must be None otherwise. "
                f"Received: mode={mode!r}, domain_classifier={domain_classifier!r}"
            )
        if gradient_clip == "auto":
            gradient_clip = 5.0 if mode == "uada" else None
        if gradient_clip is not None and not gradient_clip > 0:
            raise ValueError(
                f"`gradient_clip` must be positive, None or 'auto'. "
                f"Received: gradient_clip={gradient_clip!r}"
            )
        if not (isinstance(max_consecutive_skips, int) and max_consecutive_skips >= 1):
            raise ValueError(
                f"`max_consecutive_skips` must be a positive integer. "
                f"Received: max_consecutive_skips={max_consecutive_skips!r}"
            )
        if lambda_conf < 0:
            raise ValueError(f"`lambda_conf` must be >= 0. Received: lambda_conf={lambda_conf!r}")
        self.representation = representation
        self.segmentation_head = segmentation_head
        self.domain_classifier = domain_classifier
        self.mode = mode
        self.num_classes = int(num_classes)
        self.lambda_conf = float(lambda_conf)
        self.steps_per_epoch = int(steps_per_epoch)
        self.ramp_epochs = ramp_epochs
        self.noise_sigma = float(noise_sigma)
        self.noise_decay_steps = int(noise_decay_steps)
        self.l2_regularization = float(l2_regularization)
        self.gradient_clip = None if gradient_clip is None else float(gradient_clip)
        self.max_consecutive_skips = max_consecutive_skips
        self.seed = int(seed)

        height, width = segmentation_head.output_shape[1:3]
        images = keras.Input(shape=(height, width, 3), name="images")
        self.segmenter = keras.Model(
            images, segmentation_head(representation(images)), name="segmenter"
        )
        self.image_size = (height, width)
        self._l2_weights = (
            _conv_kernels(representation)
            + _conv_kernels(segmentation_head)
            + [segmentation_head.get_layer(name).bias for name in _REGULARIZED_BIASES]
        )
        # Moving statistics of R and S; restored when a step is skipped.
        self._state_variables = (
            representation.non_trainable_variables + segmentation_head.non_trainable_variables
        )
        self.skipped_steps = keras.Variable(0, dtype="int64", trainable=False, name="skipped_steps")
        self._consecutive_skips = keras.Variable(
            0, dtype="int64", trainable=False, name="consecutive_skips"
        )
        self._invalid_label_steps = keras.Variable(
            0, dtype="int64", trainable=False, name="invalid_label_steps"
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")  # the G objective
        self.seg_loss_tracker = keras.metrics.Mean(name="seg_loss")
        if mode == "uada":
            self.domain_loss_tracker = keras.metrics.Mean(name="domain_loss")
            self.confusion_loss_tracker = keras.metrics.Mean(name="confusion_loss")
            self.domain_accuracy_tracker = keras.metrics.Mean(name="domain_accuracy")
            self.clipped_fraction_tracker = keras.metrics.Mean(name="confusion_clipped_fraction")
            self.gradient_ratio_tracker = keras.metrics.Mean(name="confusion_gradient_ratio")
        self.seg_optimizer = None
        self.domain_optimizer = None
        self.built = True

    # ----------------------------------------------------------------------------------------
    # Inference

    def call(self, inputs, training=False):
        return self.segmenter(inputs, training=training)

    def predict_labels(self, images, batch_size=None):
        """Returns the label map `[N, H, W]` (int32 train ids) of images `[N, H, W, 3]`."""
        from uada.models.label_prediction import predict_labels

        return predict_labels(self.segmenter, images, batch_size=batch_size)

    # ----------------------------------------------------------------------------------------
    # Training

    def compile(self, seg_optimizer=None, domain_optimizer=None, *, learning_rate=0.01,
                decay_epochs=(9, 16), steps_per_execution=1, jit_compile="auto",
                run_eagerly=False):  # fmt: skip
        """Configures training; builds both optimizers on their variables.

        Args:
            seg_optimizer: optimizer of the G step (R and S). Defaults to SGD, momentum 0.9,
                `learning_rate` halved after each of `decay_epochs`.
            domain_optimizer: optimizer of the D step (`"uada"` mode only); the same default.
            learning_rate: initial learning rate of the default optimizers. Defaults to 0.01.
            decay_epochs: epochs after which the default optimizers' rate is halved.
                Defaults to (9, 16) (the paper's text).
            steps_per_execution, jit_compile, run_eagerly: as in `keras.Model.compile`.

        Under a `"mixed_float16"` policy (the model's compute dtype is float16) both optimizers
        are wrapped in `keras.optimizers.LossScaleOptimizer` (see "Mixed precision" in the
        class docstring).
        """
        with self.distribute_strategy.scope():
            if seg_optimizer is None:
                seg_optimizer = self._default_optimizer(learning_rate, decay_epochs, "seg_sgd")
            if self.mode == "uada" and domain_optimizer is None:
                domain_optimizer = self._default_optimizer(
                    learning_rate, decay_epochs, "domain_sgd"
                )
            if self.compute_dtype == "float16":  # both updates need loss scaling
                seg_optimizer = step_guard.loss_scaled(seg_optimizer)
                if domain_optimizer is not None:
                    domain_optimizer = step_guard.loss_scaled(domain_optimizer)
        if self.mode != "uada" and domain_optimizer is not None:
            raise ValueError(
                f"`domain_optimizer` is only used in 'uada' mode. Received: mode={self.mode!r}, "
                f"domain_optimizer={domain_optimizer!r}"
            )
        inner = step_guard.inner_optimizer
        if inner(seg_optimizer) is inner(domain_optimizer):
            raise ValueError(
                "`seg_optimizer` and `domain_optimizer` must be two optimizer instances "
                "(each keeps its own momentum and step count)."
            )
        super().compile(
            optimizer=seg_optimizer,
            steps_per_execution=steps_per_execution,
            jit_compile=jit_compile,
            run_eagerly=run_eagerly,
            auto_scale_loss=False,
        )
        self.seg_optimizer = self.optimizer
        self.domain_optimizer = domain_optimizer
        # `fit` builds only `self.optimizer`, and on every trainable variable: build both here.
        with self.distribute_strategy.scope():
            self.seg_optimizer.build(self._generator_variables)
            if self.domain_optimizer is not None:
                self.domain_optimizer.build(self.domain_classifier.trainable_variables)

    def _default_optimizer(self, learning_rate, decay_epochs, name):
        return schedules.sgd(
            learning_rate,
            steps_per_epoch=self.steps_per_epoch,
            decay_epochs=decay_epochs,
            name=name,
        )

    @property
    def _generator_variables(self):
        return self.representation.trainable_variables + self.segmentation_head.trainable_variables

    def fit(self, *args, **kwargs):
        """`keras.Model.fit`, with a callback that raises when labels are invalid or too many
        consecutive steps were skipped (see the class docstring)."""
        callbacks = list(kwargs.pop("callbacks", None) or [])
        if not any(isinstance(c, step_guard.TrainingGuard) for c in callbacks):
            callbacks.append(step_guard.TrainingGuard())
        return super().fit(*args, callbacks=callbacks, **kwargs)

    # Keras' symbolic build would draw a batch from the input; see `no_symbolic_build`.
    _maybe_symbolic_build = framework_internals.no_symbolic_build

    @property
    def metrics(self):
        # The model's own trackers, reset by `fit` each epoch (Keras' compile-made "loss"
        # tracker is never updated here).
        return [self.loss_tracker, self.seg_loss_tracker, *self._domain_trackers]

    @property
    def log_names(self):
        """The names of `train_step`'s logs in their order, but the float16 `loss_scale`: the
        metrics' means (`metrics`), `lr`, the step's `sigma` (`"uada"` only), `skipped_steps`."""
        step = ("lr", "sigma") if self.mode == "uada" else ("lr",)
        return (*(metric.name for metric in self.metrics), *step, "skipped_steps")

    def train_step(self, data):
        logs = self._step(data)
        return framework_internals.reducible_logs(logs, tf.distribute.get_strategy())

    @property
    def _domain_variables(self):
        if self.domain_classifier is None:
            return []
        return self.domain_classifier.trainable_variables

    @property
    def _domain_state(self):
        """What D's update changes: D's weights and its optimizer's iteration and momentum (not a
        loss scale, which must keep finding its level whether or not the step is applied)."""
        if self.domain_classifier is None:
            return []
        return self._domain_variables + list(
            step_guard.inner_optimizer(self.domain_optimizer).variables
        )

    def _unpack(self, data):
        """`((source_images, source_labels), target_images)` or `(source_images, source_labels)`
        -> `(source_images, source_labels, target_images or None)`."""
        if isinstance(data, tuple | list) and len(data) == 2 and isinstance(data[0], tuple | list):
            (source_images, source_labels), target_images = data
        elif isinstance(data, tuple | list) and len(data) == 2:
            (source_images, source_labels), target_images = data, None
        else:
            raise ValueError(
                "Each batch must be ((source_images, source_labels), target_images), or "
                f"(source_images, source_labels) in 'source_only' mode. Received: {data!r}"
            )
        if target_images is None and self.mode != "source_only":
            raise ValueError(
                f"mode={self.mode!r} needs target images: each batch must be "
                "((source_images, source_labels), target_images)."
            )
        if self.mode == "source_only":
            target_images = None  # target images never enter a source-only model
        if source_images.shape[0] is None:
            raise ValueError(
                "The source batch size must be static (it sets the source/target split of every "
                "normalization layer); batch the dataset with `drop_remainder=True`. Received: "
                f"source_images with shape {source_images.shape}"
            )
        return source_images, source_labels, target_images

    def _step(self, data):
        """One step of Eq. 2 (class docstring); the guards are `uada.models.step_guard`'s.

        Returns the logs `fit` shows (`_logs`)."""
        source_images, source_labels, target_images = self._unpack(data)
        num_source = int(source_images.shape[0])  # per replica
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        invalid_labels = losses.assert_valid_labels(
            source_labels, num_classes=self.num_classes, name="source_labels"
        )
        images = self._source_first(source_images, target_images, invalid_labels)
        moving_statistics = step_guard.snapshot(self._state_variables)
        # D's update is applied before G's fate is known; a skipped G step takes it back too.
        domain_state = step_guard.snapshot(self._domain_state)
        step, g_step = self._step_counts()
        learning_rate = tf.cast(self.seg_optimizer.learning_rate, tf.float32)  # before the update
        logs, d_overflow, conf_loss, d_metrics = {}, tf.constant(False), None, {}

        with tf.GradientTape() as tape:
            with domain_split(None if target_images is None else num_source):
                z = self.representation(images, training=True)  # Z = R([x_s; x_t]): [N, h, w, 256]
            with domain_split(None):  # S's DAN on source rows only: the same source logits
                logits = self.segmentation_head(z[:num_source], training=True)
            seg_loss, global_seg_loss = self._segmentation_loss(source_labels, logits)
            reg_loss = losses.l2_regularization(self._l2_weights, self.l2_regularization)
            g_loss = seg_loss + reg_loss / replicas  # this replica's share of the G objective
            finite = tf.math.is_finite(global_seg_loss) & tf.equal(invalid_labels, 0)
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

        g_variables = self._generator_variables
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
                "confusion_clipped_fraction": losses.confusion_clipped_fraction(
                    conf_logits, num_source
                ),
                "confusion_gradient_ratio": _confusion_gradient_ratio(z_grad, num_source),
            }
        applied, g_overflow = step_guard.apply_or_skip(
            self.seg_optimizer, g_grads, g_variables,
            losses_finite=g_losses_finite, grads_finite=g_grads_finite,
        )  # fmt: skip
        step_guard.restore_unless(applied, self._state_variables, moving_statistics)
        step_guard.restore_unless(applied, self._domain_state, domain_state)
        step_guard.count_skip(
            applied, d_overflow | g_overflow, self.skipped_steps, self._consecutive_skips
        )
        self._invalid_label_steps.assign_add(tf.cast(invalid_labels > 0, tf.int64))
        self._update_metrics(applied, total, global_seg_loss, conf_loss, diagnostics)
        return self._logs(learning_rate, logs)

    def _domain_step(self, z, num_source, step, finite, logs):
        """The D step of Eq. 2 on `z` = sg(Z): min over theta_d of L_dom(D(z + sigma * n1)).

        `finite` says whether the G step's losses so far are finite (a step is applied whole or
        not at all). Returns `(finite, overflow, metrics)`, `metrics` the step's `domain_loss`
        and `domain_accuracy` (counted only if the whole step is applied); adds `sigma` to `logs`.
        """
        variables = self._domain_variables
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        logs["sigma"] = self._sigma(step)
        noisy_z = self._with_noise(z, step)
        with tf.GradientTape() as tape:
            d_logits = self.domain_classifier(noisy_z, training=True)  # [N, h, w, 1]
            d_loss = losses.domain_loss(d_logits, num_source)
            scaled = self.domain_optimizer.scale_loss(d_loss / replicas)
        grads, grads_finite = step_guard.reduce_gradients(
            tape.gradient(scaled, variables), self.domain_optimizer, self.gradient_clip
        )
        losses_finite = finite & tf.math.is_finite(step_guard.sum_over_replicas(d_loss))
        finite, overflow = step_guard.apply_or_skip(
            self.domain_optimizer, grads, variables,
            losses_finite=losses_finite, grads_finite=grads_finite,
        )  # fmt: skip
        accuracy = losses.pooled_domain_accuracy(d_logits, num_source)
        return finite, overflow, {"domain_loss": d_loss, "domain_accuracy": accuracy}

    def _source_first(self, source_images, target_images, invalid_labels):
        """The batch R sees: `[x_s ; x_t]` (`[num_source + num_target, H, W, 3]`), or `x_s` alone
        without target images; computed after the label check (no loss on invalid labels)."""
        with tf.control_dependencies([invalid_labels]):
            source_images = tf.identity(source_images)
        if target_images is None:
            return source_images
        return tf.concat([source_images, tf.cast(target_images, source_images.dtype)], 0)

    def _step_counts(self):
        """`(step, g_step)`: D + G steps taken (the noise schedule's clock) and G steps taken."""
        d_iterations = self.domain_optimizer.iterations if self.mode == "uada" else 0
        g_iterations = self.seg_optimizer.iterations
        return tf.cast(d_iterations, tf.int64) + tf.cast(g_iterations, tf.int64), g_iterations

    @property
    def _ramp_steps(self):
        return int(round(self.ramp_epochs * self.steps_per_epoch))

    def _segmentation_loss(self, labels, logits):
        """L_seg as `(this replica's share, the global mean)`: the summed cross-entropy over
        this replica's valid pixels divided by the global number of valid source pixels, so
        that the replicas' gradients add up to the gradient of the global mean."""
        seg_sum, valid_count = losses.segmentation_loss_sum(
            labels, logits, num_classes=self.num_classes
        )
        global_sum_count = step_guard.sum_over_replicas(tf.stack([seg_sum, valid_count]))
        global_sum, global_count = global_sum_count[0], global_sum_count[1]
        return seg_sum / tf.maximum(global_count, 1.0), global_sum / tf.maximum(global_count, 1.0)

    def _update_metrics(self, applied, loss, seg_loss, confusion_loss, diagnostics):
        """Adds an applied step's G losses and `diagnostics` (`{tracker name: value}`, empty
        unless `"uada"`) to the metrics (a skipped step adds nothing)."""
        weight = tf.cast(applied, tf.float32)
        step_guard.update_mean(self.loss_tracker, loss, weight)
        step_guard.update_mean(self.seg_loss_tracker, seg_loss, weight)
        if confusion_loss is not None:
            step_guard.update_mean(self.confusion_loss_tracker, confusion_loss, weight)
        for tracker in self._domain_trackers:
            if tracker.name in diagnostics:
                step_guard.update_mean(tracker, diagnostics[tracker.name], weight)

    def _logs(self, learning_rate, step_logs):
        """The logs `fit` shows: the metrics' means over the applied steps, `lr`, the step's
        `sigma`, `skipped_steps` and, under float16 loss scaling, the G step's `loss_scale`."""
        logs = {
            "loss": self.loss_tracker.result(),
            "seg_loss": self.seg_loss_tracker.result(),
            **{m.name: m.result() for m in self._domain_trackers},
            "lr": learning_rate,
            **step_logs,
            "skipped_steps": self.skipped_steps.value,
        }
        if isinstance(self.seg_optimizer, keras.optimizers.LossScaleOptimizer):
            logs["loss_scale"] = self.seg_optimizer.dynamic_scale.value
        return logs

    @property
    def _domain_trackers(self):
        if self.mode != "uada":
            return []
        return [
            self.domain_loss_tracker,
            self.confusion_loss_tracker,
            self.domain_accuracy_tracker,
            self.clipped_fraction_tracker,
            self.gradient_ratio_tracker,
        ]

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
        backbone: `"resnet50"` or `"resnet_tiny"` (see `build_backbone`).
        norm: normalization of R, one of `uada.layers.NORMALIZATIONS`. S always uses DAN.
        output_stride: 8 (the paper), 16 or 32.
        weights: `None`, `"imagenet"` (ResNet-50 only) or the path to a Keras weights file of
            the backbone's base model (see `build_backbone`).
        image_size: `(H, W)` of training and inference images. Defaults to (384, 768).
        num_classes: number of classes. Defaults to 19.
        lambda_conf: weight of the confusion loss. Defaults to 0.01.
        synchronized: all-reduce normalization statistics across replicas. Defaults to `True`
            when built under a `tf.distribute` strategy with more than one replica.
        dan_target_epsilon: with `norm="dan"`, the epsilon R's DAN layers add to the source
            variance for the target samples; `None` for 1e-5, the source samples' (the original
            code's is 1e-9; docs/FIDELITY.md, *Normalization*).
        **kwargs: the other `UADAModel` arguments (`steps_per_epoch`, `ramp_epochs`,
            `noise_sigma`, `noise_decay_steps`, `l2_regularization`, `gradient_clip`,
            `max_consecutive_skips`, `seed`, `name`).

    Returns:
        A `UADAModel`, not compiled.
    """
    _check_mode(mode)  # before building anything
    if synchronized is None:
        synchronized = tf.distribute.get_strategy().num_replicas_in_sync > 1
    features = build_backbone(
        backbone, norm, output_stride, weights, input_shape=(*image_size, 3),
        synchronized=synchronized, dan_target_epsilon=dan_target_epsilon,
    )  # fmt: skip
    representation = build_representation(
        features, norm, synchronized=synchronized, dan_target_epsilon=dan_target_epsilon
    )
    head = build_segmentation_head(num_classes, image_size, synchronized=synchronized)
    domain_classifier = build_domain_classifier() if mode == "uada" else None
    kwargs.setdefault("name", f"uada_{mode}")
    return UADAModel(
        representation, head, domain_classifier, mode=mode, num_classes=num_classes,
        lambda_conf=lambda_conf, **kwargs,
    )  # fmt: skip


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")


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


def _conv_kernels(model):
    """The kernels of every `Conv2D` and `Conv2DTranspose` in `model`, nested models included."""
    kernels = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            kernels += _conv_kernels(layer)
        elif isinstance(layer, keras.layers.Conv2D | keras.layers.Conv2DTranspose):
            kernels.append(layer.kernel)
    return kernels
