"""Domain Agnostic Normalization (DAN): batch norm whose statistics come from the source."""

import keras
import tensorflow as tf
from keras import ops

from uada.layers import domain_split as domain_split_lib


def _validate_common(layer, axis, momentum, epsilon, renorm):
    """Validates the arguments shared by uada's batch-norm variants (raises `ValueError`)."""
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise ValueError(f"`axis` must be a single integer. Received: axis={axis!r}")
    if isinstance(momentum, bool) or not isinstance(momentum, int | float):
        raise ValueError(f"`momentum` must be a number in [0, 1). Received: momentum={momentum!r}")
    if not 0.0 <= float(momentum) < 1.0:
        raise ValueError(f"`momentum` must be in [0, 1). Received: momentum={momentum!r}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or epsilon <= 0:
        raise ValueError(f"`epsilon` must be a positive number. Received: epsilon={epsilon!r}")
    if renorm:
        raise ValueError(
            f"{type(layer).__name__} does not support batch renormalization. Received: renorm=True"
        )


class SourceFirstNormalization(keras.layers.BatchNormalization):
    """Base of the batch-norm variants that treat the first `num_source` samples as source.

    Holds what DAN and split batch norm share with Keras `BatchNormalization` (variables, config,
    inference) and adds the source-first split: argument checks, the per-sample source mask and
    statistics in float32. Subclasses implement `_train_transform`.
    """

    def __init__(self, axis=-1, momentum=0.96, epsilon=1e-5, renorm=False, **kwargs):
        _validate_common(self, axis, momentum, epsilon, renorm)
        super().__init__(axis=axis, momentum=momentum, epsilon=epsilon, renorm=False, **kwargs)

    def build(self, input_shape):
        ndim = len(input_shape)
        if not -ndim <= self.axis < ndim:
            raise ValueError(
                f"`axis` is out of bounds for an input of rank {ndim} "
                f"(shape {tuple(input_shape)}). Received: axis={self.axis}"
            )
        if self.axis % ndim == 0:
            raise ValueError(
                f"`axis` must not be the batch axis 0: the batch is split into source and target "
                f"samples along it. Received: axis={self.axis}"
            )
        super().build(input_shape)

    def _resolve_num_source(self, inputs, num_source):
        """Returns the static number of source samples, or `None` when all samples are source."""
        if num_source is None:
            num_source = domain_split_lib.current_num_source()
        num_source = domain_split_lib.validate_num_source(num_source)
        if num_source is None:
            return None
        batch = inputs.shape[0]
        if batch is not None and num_source > batch:
            raise ValueError(
                f"`num_source` must not exceed the batch size {batch}. "
                f"Received: num_source={num_source}"
            )
        if batch is not None and num_source == batch:
            return None
        return num_source

    def _scale_offset(self, mean, variance):
        """Returns `scale, offset` with `y = x * scale + offset` (the `tf.nn.batch_normalization`
        arithmetic: `scale = gamma / sqrt(var + eps)`, `offset = beta - mean * scale`)."""
        scale = ops.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            scale = scale * ops.cast(self.gamma, "float32")
        offset = -mean * scale
        if self.beta is not None:
            offset = offset + ops.cast(self.beta, "float32")
        return scale, offset

    def _broadcast_shape(self, ndim):
        shape = [1] * ndim
        shape[self.axis] = -1
        return shape

    def _source_mask(self, inputs, num_source):
        """Boolean `[N, 1, ..., 1]`, True for the first `num_source` samples."""
        ndim = len(inputs.shape)
        batch = tf.shape(inputs)[0]
        tf.debugging.assert_less_equal(
            num_source, batch, message=f"`num_source`={num_source} exceeds the batch size"
        )
        is_source = tf.range(batch) < num_source
        return tf.reshape(is_source, [-1] + [1] * (ndim - 1))

    def _moments(self, inputs, mask=None):
        # Statistics in float32 even under a mixed-precision policy; synchronized moments
        # all-reduce count, sum and sum of squares across replicas (Keras' implementation).
        return ops.moments(
            ops.cast(inputs, "float32"), axes=self._reduction_axes, synchronized=self.synchronized
        )

    def _update_moving(self, mean, variance):
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))

    def _apply_per_domain(self, inputs, num_source, source_transform, target_transform):
        """Applies `(scale, offset)` pairs of shape [C]: the first to the first `num_source`
        samples, the second to the rest, via a per-sample `[N, 1, ..., 1, C]` transform."""
        shape = self._broadcast_shape(len(inputs.shape))
        is_source = self._source_mask(inputs, num_source)
        scale, offset = (
            ops.where(is_source, ops.reshape(s, shape), ops.reshape(t, shape))
            for s, t in zip(source_transform, target_transform, strict=True)
        )
        return self._apply(inputs, scale, offset)

    def _apply(self, inputs, scale, offset):
        shape = self._broadcast_shape(len(inputs.shape))
        x = ops.cast(inputs, "float32")
        if len(scale.shape) == 1:
            scale, offset = ops.reshape(scale, shape), ops.reshape(offset, shape)
        return ops.cast(x * scale + offset, self.compute_dtype)

    def call(self, inputs, training=None, mask=None, num_source=None):
        if mask is not None:
            raise ValueError(f"{type(self).__name__} does not support masking. Received: mask")
        num_source = self._resolve_num_source(inputs, num_source)
        if not (training and self.trainable):
            return self._apply(inputs, *self._scale_offset(self.moving_mean, self.moving_variance))
        if num_source is None:
            mean, variance = self._moments(inputs)
            self._update_moving(mean, variance)
            return self._apply(inputs, *self._scale_offset(mean, variance))
        return self._train_transform(inputs, num_source)

    def _train_transform(self, inputs, num_source):
        raise NotImplementedError

    def compute_output_spec(self, inputs, training=None, mask=None, num_source=None):
        return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        # Renormalization is rejected by the constructor; keep the config minimal and exact.
        for key in ("renorm", "renorm_clipping", "renorm_momentum"):
            config.pop(key, None)
        return config


@keras.saving.register_keras_serializable(package="uada")
class DomainAgnosticNormalization(SourceFirstNormalization):
    """Domain Agnostic Normalization (DAN) layer.

    Batch normalization whose statistics are computed from the **source** samples only, and applied
    unchanged to the target samples. A training batch is laid out source first, `x = [x_s ; x_t]`,
    with `num_source` source samples. Statistics are per channel over all other axes, in float32.

    Training:
        mu_s, var_s = moments(x_s)
        y_s = gamma * (x_s - mu_s) / sqrt(var_s + eps) + beta
        y_t = gamma * (x_t - sg(mu_s)) / sqrt(sg(var_s) + eps) + beta      (sg = stop_gradient)
        moving_mean = momentum * moving_mean + (1 - momentum) * mu_s   (likewise the variance)

    so target samples never reach the moving statistics, and a loss of the target outputs has no
    gradient with respect to the source inputs (but does with respect to gamma and beta).
    Inference (every sample, every domain):
        y = gamma * (x - moving_mean) / sqrt(moving_variance + eps) + beta

    With no target part (`num_source` absent or equal to the batch size) DAN is numerically Keras
    `BatchNormalization` with the same `momentum` and `epsilon`.

    Args:
        axis: the channel axis. Defaults to -1.
        momentum: momentum of the moving averages. Defaults to 0.96 (the original code).
        epsilon: added to the variance. Defaults to 1e-5.
        center: whether to add the learned offset `beta`.
        scale: whether to multiply by the learned scale `gamma`.
        synchronized: under `tf.distribute`, compute the source statistics over all replicas'
            source samples (all-reduce of count, sum and sum of squares) as synchronized BN does.
        **kwargs: the other arguments of `keras.layers.BatchNormalization` (initializers,
            regularizers, constraints) and base layer arguments (`name`, `dtype`).

    Call arguments:
        inputs: a tensor whose first axis is the batch, source samples first.
        training: whether to use batch statistics (and update the moving statistics).
        num_source: number of leading source samples. Defaults to the value set by
            `uada.layers.domain_split`, else every sample is source. Ignored at inference.

    Reference:
        Romijnders, Meletis, Dubbelman. *A Domain Agnostic Normalization Layer for Unsupervised
        Adversarial Domain Adaptation.* WACV 2019. arXiv:1809.05298.
    """

    def _train_transform(self, inputs, num_source):
        if num_source == 0:
            raise ValueError(
                "DomainAgnosticNormalization needs at least one source sample in training "
                "(its statistics come from the source). Received: num_source=0"
            )
        # [N, ...] -> source part [num_source, ...]; the target part is never reduced over.
        mean_s, var_s = self._moments(inputs[:num_source])
        self._update_moving(mean_s, var_s)
        scale_s, offset_s = self._scale_offset(mean_s, var_s)
        scale_t, offset_t = self._scale_offset(ops.stop_gradient(mean_s), ops.stop_gradient(var_s))
        # Target rows take the same values as the source rows, without a gradient path to x_s.
        return self._apply_per_domain(inputs, num_source, (scale_s, offset_s), (scale_t, offset_t))
