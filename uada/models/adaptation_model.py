"""`AdaptationModel`: the frame every adaptation method trains in, and the network it trains.

    images --R--> Z --S--> logits at the input size            (the segmentation network)
    a step: source-first batch [x_s ; x_t] -> the method's losses -> guarded updates

What every method shares lives here: R and S (`build_segmentation_network`), the inference
`segmenter`, L_seg over the valid source pixels (divided by the global number of valid pixels
under `tf.distribute`), L_reg, the optimizers (SGD on the paper's schedule for R and S; a method
with a second network brings its own optimizer for it), the step's guards (`uada.models.step_guard`:
invalid labels, non-finite losses or gradients, float16 loss scaling), the metrics and the
serialization. A method subclasses it and writes its step (`_step`); `uada.models.UADAModel` is
the paper's, `uada.methods` holds the field's others.
"""

import typing

import keras
import tensorflow as tf

from uada import framework_internals
from uada.models import losses, schedules, step_guard
from uada.models.backbones import build_backbone
from uada.models.heads import build_representation, build_segmentation_head

# S's layers whose bias L2 also reaches (docs/FIDELITY.md, *Training*).
REGULARIZED_BIASES = ("logits_conv", "logits_upsample")


def build_segmentation_network(backbone="resnet50", norm="dan", output_stride=8, weights=None,
                               image_size=(384, 768), num_classes=19, *, synchronized=None,
                               dan_target_epsilon=None, name_prefix=""):  # fmt: skip
    """Builds R (backbone + extension) and S, the segmentation network every mode trains.

    Args:
        backbone: `"resnet50"` or `"resnet_tiny"` (see `build_backbone`).
        norm: normalization of R, one of `uada.layers.NORMALIZATIONS`. S always uses DAN.
        output_stride: 8 (the paper), 16 or 32.
        weights: `None`, `"imagenet"` (ResNet-50 only) or the path to a Keras weights file of
            the backbone's base model (see `build_backbone`).
        image_size: `(H, W)` of training and inference images. Defaults to (384, 768).
        num_classes: number of classes. Defaults to 19.
        synchronized: all-reduce normalization statistics across replicas. Defaults to `True`
            when built under a `tf.distribute` strategy with more than one replica.
        dan_target_epsilon: with `norm="dan"`, the epsilon R's DAN layers add to the source
            variance for the target samples; `None` for 1e-5, the source samples' (the original
            code's is 1e-9; docs/FIDELITY.md, *Normalization*).
        name_prefix: prefix of the two models' names (`"representation"`,
            `"segmentation_head"`), e.g. for a second copy of the network.

    Returns:
        `(representation, segmentation_head)`: R, images -> Z, and S, Z -> logits.
    """
    if synchronized is None:
        synchronized = tf.distribute.get_strategy().num_replicas_in_sync > 1
    features = build_backbone(
        backbone, norm, output_stride, weights, input_shape=(*image_size, 3),
        synchronized=synchronized, dan_target_epsilon=dan_target_epsilon,
    )  # fmt: skip
    representation = build_representation(
        features, norm, synchronized=synchronized, dan_target_epsilon=dan_target_epsilon,
        name=f"{name_prefix}representation",
    )  # fmt: skip
    head = build_segmentation_head(
        num_classes, image_size, synchronized=synchronized, name=f"{name_prefix}segmentation_head"
    )
    return representation, head


class StepStart(typing.NamedTuple):
    """What `AdaptationModel._start_step` prepares for a step (its docstring says what)."""

    images: tf.Tensor
    num_source: int
    has_target: bool
    source_labels: tf.Tensor
    invalid_labels: tf.Tensor
    moving_statistics: list
    domain_state: list
    learning_rate: tf.Tensor


class AdaptationModel(keras.Model):
    """R + S trained on labelled source and unlabelled target images; subclasses write the step.

    A training batch is `((source_images, source_labels), target_images)`; the model sees it
    source first, `[x_s ; x_t]`, and calls R inside `uada.layers.domain_split(num_source)` so
    that every normalization knows the split. Images are float32 RGB in [0, 255],
    `[B, H, W, 3]`; labels int `[B, H, W]` with 255 = ignore; the source batch size must be
    static (batch with `drop_remainder=True`). Under `tf.distribute` each replica receives its
    own source-first batch.

    The step of a subclass (`_step`) returns its logs through `_logs`; it keeps the frame's
    guarantees with `uada.models.step_guard`: labels other than `0..num_classes-1` and 255 raise
    `tf.errors.InvalidArgumentError` (or, under XLA, skip the step and stop `fit` with the same
    error); a step whose losses or gradients are not finite changes no variable and counts in
    `skipped_steps`, and after `max_consecutive_skips` consecutive skips `fit` stops with
    `NonFiniteLossError`; under a `"mixed_float16"` policy `compile` wraps the optimizers in
    `keras.optimizers.LossScaleOptimizer`.

    Args:
        representation: R, a `keras.Model` images -> Z.
        segmentation_head: S, a `keras.Model` Z -> logits at the image size.
        num_classes: number of classes. Defaults to 19.
        steps_per_epoch: G steps per epoch, for the schedules. Defaults to 1487.
        l2_regularization: coefficient `l2` of `l2 * sum(w^2)` over the conv kernels of R and S
            and the biases of S's logits and their upsampling. Defaults to 8.5e-5
            (= 0.00017 / 2).
        gradient_clip: element-wise gradient bound, or `None` for no clipping.
        max_consecutive_skips: consecutive skipped steps after which `fit` raises. Defaults to 10.
        seed: seed of the step's randomness, if any. Defaults to 0.
        **kwargs: base `keras.Model` arguments (`name`).

    Attributes:
        representation, segmentation_head: R and S.
        domain_classifier: a domain classifier on Z (UADA's D), or `None`.
        segmenter: the inference model, images `[N, H, W, 3]` in [0, 255] -> logits
            `[N, H, W, num_classes]`; no domain input. Saveable with `.keras`.
        seg_optimizer: the optimizer of R and S (also `optimizer`), set by `compile()`.
        domain_optimizer: the optimizer of the method's second trained network (a
            discriminator), set by `compile()`; `None` without one.
    """

    def __init__(self, representation, segmentation_head, *, num_classes=19,
                 steps_per_epoch=schedules.STEPS_PER_EPOCH, l2_regularization=8.5e-5,
                 gradient_clip=None, max_consecutive_skips=10, seed=0, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        if gradient_clip is not None and not gradient_clip > 0:
            raise ValueError(
                f"`gradient_clip` must be positive or None. "
                f"Received: gradient_clip={gradient_clip!r}"
            )
        if not (isinstance(max_consecutive_skips, int) and max_consecutive_skips >= 1):
            raise ValueError(
                f"`max_consecutive_skips` must be a positive integer. "
                f"Received: max_consecutive_skips={max_consecutive_skips!r}"
            )
        self.representation = representation
        self.segmentation_head = segmentation_head
        self.domain_classifier = None
        self.num_classes = int(num_classes)
        self.steps_per_epoch = int(steps_per_epoch)
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
            + [segmentation_head.get_layer(name).bias for name in REGULARIZED_BIASES]
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
        self.loss_tracker = keras.metrics.Mean(name="loss")  # the objective of R and S
        self.seg_loss_tracker = keras.metrics.Mean(name="seg_loss")
        self.method_trackers = [keras.metrics.Mean(name=name) for name in self.method_metric_names]
        self.seg_optimizer = None
        self.domain_optimizer = None
        self.built = True

    # Names of the method's own metrics (each the mean over the applied steps), in log order.
    method_metric_names = ()
    # The progress bar's share of the logs (TensorBoard gets them all): a line for a terminal.
    bar_metric_names = ()

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
                decay_epochs=(9, 16), decay_factor=0.5, steps_per_execution=1,
                jit_compile="auto", run_eagerly=False):  # fmt: skip
        """Configures training; builds the optimizers on their variables.

        Args:
            seg_optimizer: optimizer of R and S. Defaults to SGD, momentum 0.9, `learning_rate`
                multiplied by `decay_factor` after each of `decay_epochs`.
            domain_optimizer: optimizer of the method's second network (`domain_variables`);
                defaults to the method's own (`_default_domain_optimizer`) on the same decay.
                Must be `None` for a method without one.
            learning_rate: initial learning rate of the default SGD. Defaults to 0.01.
            decay_epochs: epochs after which the default optimizers' rate is multiplied by
                `decay_factor`. Defaults to (9, 16) (the paper's text).
            decay_factor: the decay factor. Defaults to 0.5.
            steps_per_execution, jit_compile, run_eagerly: as in `keras.Model.compile`.

        Under a `"mixed_float16"` policy both optimizers are wrapped in
        `keras.optimizers.LossScaleOptimizer`.
        """
        has_domain_update = bool(self.domain_variables)
        if not has_domain_update and domain_optimizer is not None:
            raise ValueError(
                f"`domain_optimizer` is only used by a model with a second trained network. "
                f"Received: domain_optimizer={domain_optimizer!r} for {type(self).__name__}"
            )
        with self.distribute_strategy.scope():
            if seg_optimizer is None:
                seg_optimizer = schedules.sgd(
                    learning_rate, steps_per_epoch=self.steps_per_epoch,
                    decay_epochs=decay_epochs, factor=decay_factor, name="seg_sgd",
                )  # fmt: skip
            if has_domain_update and domain_optimizer is None:
                domain_optimizer = self._default_domain_optimizer(
                    learning_rate, decay_epochs, decay_factor
                )
            if self.compute_dtype == "float16":  # both updates need loss scaling
                seg_optimizer = step_guard.loss_scaled(seg_optimizer)
                if domain_optimizer is not None:
                    domain_optimizer = step_guard.loss_scaled(domain_optimizer)
        inner = step_guard.inner_optimizer
        if domain_optimizer is not None and inner(seg_optimizer) is inner(domain_optimizer):
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
            self.seg_optimizer.build(self.generator_variables)
            if self.domain_optimizer is not None:
                self.domain_optimizer.build(self.domain_variables)

    def _default_domain_optimizer(self, learning_rate, decay_epochs, decay_factor):
        """The optimizer of `domain_variables` when `compile` is given none."""
        raise NotImplementedError(f"{type(self).__name__} has no second trained network.")

    @property
    def generator_variables(self):
        """The variables of R and S (the segmentation network's update)."""
        return self.representation.trainable_variables + self.segmentation_head.trainable_variables

    @property
    def domain_variables(self):
        """The variables of the method's second trained network (`[]` if it has none)."""
        return []

    @property
    def _domain_state(self):
        """What the second network's update changes: its weights and its optimizer's iteration
        and moments (not a loss scale, which must keep finding its level whether or not the step
        is applied); restored when the step is skipped."""
        if not self.domain_variables:
            return []
        return self.domain_variables + list(
            step_guard.inner_optimizer(self.domain_optimizer).variables
        )

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
        return [self.loss_tracker, self.seg_loss_tracker, *self.method_trackers]

    @property
    def log_names(self):
        """The names of `train_step`'s logs in their order, but the float16 `loss_scale`: the
        metrics' means (`metrics`), `lr`, `skipped_steps`."""
        return (*(metric.name for metric in self.metrics), "lr", "skipped_steps")

    @property
    def bar_names(self):
        """The logs the progress bar shows (TensorBoard gets every log)."""
        return ("seg_loss", *self.bar_metric_names, "lr")

    # Traced as written: the steps branch with `tf.cond` (`step_guard`) and loop only over Python
    # values, so AutoGraph's conversion, seconds of every trace, would change nothing.
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        # Runs when the step is traced: the step's graph is then freed with the model, not kept
        # to the end of the process by the custom gradients it registers.
        with framework_internals.custom_gradients_owned_by_the_graph():
            logs = self._step(data)
        return framework_internals.reducible_logs(logs, tf.distribute.get_strategy())

    def _step(self, data):
        """One training step; returns the logs `fit` shows (`_logs`)."""
        raise NotImplementedError

    def _unpack(self, data, *, needs_target=True):
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
        if target_images is None and needs_target:
            raise ValueError(
                f"{type(self).__name__} needs target images: each batch must be "
                "((source_images, source_labels), target_images)."
            )
        if source_images.shape[0] is None:
            raise ValueError(
                "The source batch size must be static (it sets the source/target split of every "
                "normalization layer); batch the dataset with `drop_remainder=True`. Received: "
                f"source_images with shape {source_images.shape}"
            )
        return source_images, source_labels, target_images

    def _start_step(self, data):
        """What every step does first: checks the labels, lays the batch out source first and
        snapshots what a skipped step must put back (`_end_step`).

        Returns a `StepStart`: `images` (`[x_s ; x_t]`, or `x_s` alone without target images;
        computed after the label check), `num_source` (per replica), `has_target`,
        `source_labels`, `invalid_labels` (their count), `moving_statistics` and `domain_state`
        (the snapshots) and `learning_rate` (R and S's, before the update).
        """
        source_images, source_labels, target_images = self._unpack(data)
        invalid_labels = losses.assert_valid_labels(
            source_labels, num_classes=self.num_classes, name="source_labels"
        )
        return StepStart(
            images=self._source_first(source_images, target_images, invalid_labels),
            num_source=int(source_images.shape[0]),
            has_target=target_images is not None,
            source_labels=source_labels,
            invalid_labels=invalid_labels,
            moving_statistics=step_guard.snapshot(self._state_variables),
            # The second network's update is applied before R and S's fate is known; a skipped
            # step takes it back too.
            domain_state=step_guard.snapshot(self._domain_state),
            learning_rate=tf.cast(self.seg_optimizer.learning_rate, tf.float32),
        )

    def _end_step(self, start, applied, overflow):
        """What every step does last: unless the step was `applied` (a bool tensor), puts back
        the moving statistics and the second network's state of `start`, and counts the skip
        (`overflow`: a float16 overflow skipped it) and an invalid label."""
        step_guard.restore_unless(applied, self._state_variables, start.moving_statistics)
        step_guard.restore_unless(applied, self._domain_state, start.domain_state)
        step_guard.count_skip(applied, overflow, self.skipped_steps, self._consecutive_skips)
        self._invalid_label_steps.assign_add(tf.cast(start.invalid_labels > 0, tf.int64))

    def _domain_update(self, loss, finite):
        """The update of the second network (`domain_variables`): a guarded step of
        `domain_optimizer` on `loss()`, run inside the update's own gradient tape and returning
        `(this replica's mean loss, anything the caller needs back)`.

        Applied only if `finite` (whether R and S's losses so far are: a step is applied whole
        or not at all) and the update's loss and gradients are finite. Returns
        `(finite, overflow, loss value, what loss() returned beside it)`: whether the step may
        still be applied, and whether a float16 overflow skipped it.
        """
        variables = self.domain_variables
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            value, aux = loss()
            scaled = self.domain_optimizer.scale_loss(value / replicas)
        grads, grads_finite = step_guard.reduce_gradients(
            tape.gradient(scaled, variables), self.domain_optimizer, self.gradient_clip
        )
        losses_finite = finite & tf.math.is_finite(step_guard.sum_over_replicas(value))
        finite, overflow = step_guard.apply_or_skip(
            self.domain_optimizer, grads, variables,
            losses_finite=losses_finite, grads_finite=grads_finite,
        )  # fmt: skip
        return finite, overflow, value, aux

    def _source_first(self, source_images, target_images, invalid_labels):
        """The batch R sees: `[x_s ; x_t]` (`[num_source + num_target, H, W, 3]`), or `x_s` alone
        without target images; computed after the label check (no loss on invalid labels)."""
        with tf.control_dependencies([invalid_labels]):
            source_images = tf.identity(source_images)
        if target_images is None:
            return source_images
        return tf.concat([source_images, tf.cast(target_images, source_images.dtype)], 0)

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

    def _update_metrics(self, applied, loss, seg_loss, method_metrics):
        """Adds an applied step's losses and `method_metrics` (`{name: value}` of
        `method_metric_names`) to the metrics (a skipped step adds nothing)."""
        weight = tf.cast(applied, tf.float32)
        step_guard.update_mean(self.loss_tracker, loss, weight)
        step_guard.update_mean(self.seg_loss_tracker, seg_loss, weight)
        for tracker in self.method_trackers:
            step_guard.update_mean(tracker, method_metrics[tracker.name], weight)

    def _logs(self, learning_rate, step_logs=None):
        """The logs `fit` shows: the metrics' means over the applied steps, `lr`, the step's own
        `step_logs`, `skipped_steps` and, under float16 loss scaling, the step's `loss_scale`."""
        logs = {
            **{metric.name: metric.result() for metric in self.metrics},
            "lr": learning_rate,
            **(step_logs or {}),
            # Values, not the variables (which a step run eagerly would hand to Keras as they are).
            "skipped_steps": tf.identity(self.skipped_steps.value),
        }
        if isinstance(self.seg_optimizer, keras.optimizers.LossScaleOptimizer):
            logs["loss_scale"] = tf.identity(self.seg_optimizer.dynamic_scale.value)
        return logs


def _conv_kernels(model):
    """The kernels of every `Conv2D` and `Conv2DTranspose` in `model`, nested models included."""
    kernels = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            kernels += _conv_kernels(layer)
        elif isinstance(layer, keras.layers.Conv2D | keras.layers.Conv2DTranspose):
            kernels.append(layer.kernel)
    return kernels
