"""`MethodModel`: the training step the field's adaptation methods share.

    Z = R([x_s ; x_t]),  logits = S(Z)                (one forward pass, source first)
    R, S step:  min  L_seg(logits_s, y_s) + L_reg + L_method(logits, x_t)
    D step:     min  the method's discriminator loss on sg(logits), if it has a discriminator
    after:      the method's own update (a teacher's moving average), if any

A method (a module of `uada.methods`) subclasses it and writes its target loss
(`_target_loss`) and, where it has them, its discriminator step (`_domain_step`, in
`uada.methods.output_space_discriminator`) and its update after the step (`_after_update`).
"""

import keras
import tensorflow as tf

from uada.layers import domain_split
from uada.models import losses, step_guard
from uada.models.adaptation_model import AdaptationModel


class MethodModel(AdaptationModel):
    """R + S trained with L_seg + L_reg on the source and a method's loss on the target outputs.

    The batch `[x_s ; x_t]` goes through R inside `uada.layers.domain_split(num_source)` and then
    through S, so that S gives the logits of both domains from one forward pass (with DAN, R's
    and S's normalizations take their statistics from the source images, and the source logits
    are those of the source images alone). The step, in order:

    1. the objective of R and S, `L_seg + L_reg + L_method`, and its gradients, where `L_method`
       is the method's loss on the target logits (`_target_loss`);
    2. the method's second update, on `sg(logits)` (`_domain_step`: a discriminator step; none
       by default); it uses the predictions of this step's forward pass, before R and S move;
    3. the update of R and S;
    4. the method's update after the step (`_after_update`: none by default).

    Each update goes through `uada.models.step_guard` (the replicas' sum, the float16 loss scale,
    the finiteness check, the element-wise clip when `gradient_clip` is set); a step is applied
    whole or not at all (a discriminator update whose R, S update is not applied is taken back).

    Args:
        representation, segmentation_head: R and S.
        gradient_clip: element-wise gradient bound, `None` for no clipping, or `"auto"` (the
            methods' originals: no clipping).
        **kwargs: the other `uada.models.adaptation_model.AdaptationModel` arguments.

    Attributes:
        hyperparameters: the names of the method's own constructor arguments, each also a
            `uada.config.Config` field (and a flag of `python -m uada.train`).
    """

    hyperparameters = ()
    # The constructor arguments that are networks (serialized as Keras objects).
    parts = ("representation", "segmentation_head")

    def __init__(self, representation, segmentation_head, *, gradient_clip="auto", **kwargs):
        if gradient_clip == "auto":
            gradient_clip = None
        super().__init__(representation, segmentation_head, gradient_clip=gradient_clip, **kwargs)

    @classmethod
    def build(cls, representation, segmentation_head, *, network, **kwargs):
        """The model of R and S with the method's other parts; `network(weights, name_prefix)`
        builds another R, S pair of the same architecture (`build_segmentation_network`)."""
        del network
        return cls(representation, segmentation_head, **kwargs)

    # ----------------------------------------------------------------------------------------
    # The step

    def _step(self, data):
        start = self._start_step(data)
        num_source = start.num_source  # per replica
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            with domain_split(num_source):
                z = self.representation(start.images, training=True)  # [N, h, w, 256]
                logits = self.segmentation_head(z, training=True)  # [N, H, W, classes]
            seg_loss, global_seg_loss = self._segmentation_loss(
                start.source_labels, logits[:num_source]
            )
            reg_loss = losses.l2_regularization(self._l2_weights, self.l2_regularization)
            method_loss, method_metrics = self._target_loss(logits, start.images, num_source)
            loss = seg_loss + reg_loss / replicas + method_loss  # this replica's share
            scaled_loss = self.seg_optimizer.scale_loss(loss)
        variables = self.generator_variables
        grads, grads_finite = step_guard.reduce_gradients(
            tape.gradient(scaled_loss, variables), self.seg_optimizer, self.gradient_clip
        )
        total = step_guard.sum_over_replicas(loss)
        finite = (
            tf.math.is_finite(global_seg_loss)
            & tf.equal(start.invalid_labels, 0)
            & tf.math.is_finite(total)
        )
        finite, domain_overflow, domain_metrics = self._domain_step(
            tf.stop_gradient(logits), num_source, finite
        )
        applied, overflow = step_guard.apply_or_skip(
            self.seg_optimizer, grads, variables, losses_finite=finite, grads_finite=grads_finite
        )
        self._end_step(start, applied, domain_overflow | overflow)
        self._after_update(applied)
        self._update_metrics(applied, total, global_seg_loss, {**method_metrics, **domain_metrics})
        return self._logs(start.learning_rate)

    def _target_loss(self, logits, images, num_source):
        """The method's loss on the target outputs.

        Args:
            logits: S's logits `[N, H, W, classes]` of the batch, source rows first.
            images: the batch `[N, H, W, 3]`, source rows first.
            num_source: the number of source rows.

        Returns:
            `(loss, metrics)`: this replica's share of the weighted loss (its sum over the
            replicas is the loss of the global batch) and `{name: value}` of the method's
            metrics.
        """
        raise NotImplementedError

    def _domain_step(self, logits, num_source, finite):
        """The method's second update, on `logits` = sg(S's logits), applied only if `finite`.

        Returns `(finite, overflow, metrics)`: whether the step may still be applied, whether a
        float16 overflow skipped it, and the update's metrics. None by default."""
        del logits, num_source
        return finite, tf.constant(False), {}

    def _after_update(self, applied):
        """The method's update after an applied step (`applied`, a bool tensor). None by
        default."""
        del applied

    # ----------------------------------------------------------------------------------------
    # Serialization

    def get_config(self):
        config = {
            "name": self.name,
            "num_classes": self.num_classes,
            "steps_per_epoch": self.steps_per_epoch,
            "l2_regularization": self.l2_regularization,
            "gradient_clip": self.gradient_clip,
            "max_consecutive_skips": self.max_consecutive_skips,
            "seed": self.seed,
            **{name: getattr(self, name) for name in self.hyperparameters},
        }
        for key in self.parts:
            config[key] = keras.saving.serialize_keras_object(getattr(self, key))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in cls.parts:
            config[key] = keras.saving.deserialize_keras_object(config[key])
        representation = config.pop("representation")
        segmentation_head = config.pop("segmentation_head")
        return cls(representation, segmentation_head, **config)
