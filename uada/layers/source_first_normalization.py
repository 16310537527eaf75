"""The base of uada's batch-norm variants for source-first batches, and their fused kernel.

A training batch is laid out source first, `x = [x_s ; x_t]`. `SourceFirstNormalization` holds what
DAN and split batch norm share with Keras `BatchNormalization` (variables, config, inference) and
adds the split. Both layers differ only in where the target part's statistics come from, so one
kernel with an analytic gradient serves both (and plain batch norm when there is no target part):

| target statistics | forward | gradient of the target rows |
|---|---|---|
| `"source"` (DAN) | the source part's | `gamma * rstd_s * dy_t`, nothing to `x_s` |
| `"own"` (split batch norm) | the target part's | batch-norm gradient with the target's stats |

DAN's target rows may add their own epsilon to the source variance (`target_epsilon`, the
original's 1e-9; docs/FIDELITY.md, *Normalization*); their gradient is then
`gamma * rsqrt(var_s + target_epsilon) * dy_t`.

The gradient is written out rather than left to autodiff: batch norm's backward pass then needs
two per-channel reductions (`sum dy`, `sum dy * x`) and one elementwise pass
`dx = dy * A + x * B + C` with per-sample, per-channel coefficients, which is cheaper on CPU than
differentiating `moments` and `batch_normalization` op by op (see BENCHMARKS.md).
"""

import keras
import tensorflow as tf

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


def _replica_sum(value, synchronized):
    """Sums `value` over the replicas when `synchronized` and inside a replica context."""
    ctx = tf.distribute.get_replica_context()
    if synchronized and ctx is not None and ctx.num_replicas_in_sync > 1:
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)
    return value


def source_first_normalize(x, gamma, beta, *, num_source, target_statistics, axis, epsilon,
                           synchronized=False, target_epsilon=None):  # fmt: skip
    """Batch-normalizes a source-first batch; returns the output and each part's statistics.

    Args:
        x: tensor `[N, ...]`, any float dtype; statistics are computed in float32.
        gamma, beta: float32 tensors of shape `[C]`.
        num_source: static number of leading source samples, or `None` for "all source".
        target_statistics: `"source"` (DAN) or `"own"` (split batch norm).
        axis: channel axis.
        epsilon: added to the variances.
        synchronized: all-reduce count, sum and sum of squares over replicas (and, in the
            backward pass, the sums of the upstream gradient) as synchronized batch norm does.
        target_epsilon: with `target_statistics="source"`, the epsilon the target rows add to
            the source variance; `None` for `epsilon`.

    Returns:
        `(y, stats)`: `y` in float32, and a list of `(mean, variance)` of shape `[C]` per part with
        its own statistics (source first), for the moving averages; no gradient flows into them.
    """
    ndim = x.shape.rank
    axis = axis % ndim
    sample_axes = [a for a in range(1, ndim) if a != axis]  # per-sample reduction axes
    stat_shape = [1] * ndim
    stat_shape[axis] = -1
    split = num_source is not None
    own_target = split and target_statistics == "own"

    @tf.custom_gradient
    def kernel(x, gamma, beta):
        x32 = tf.cast(x, tf.float32)
        # Parts with their own statistics: [num_source, ...] (and [N - num_source, ...]).
        parts = [x32[:num_source], x32[num_source:]] if own_target else [x32[:num_source]]
        if not split:
            parts = [x32]
        moments = [
            _moments(p, sample_axes, axis, synchronized) for p in parts
        ]  # (mean, var, count)
        rstds = [tf.math.rsqrt(v + epsilon) for _, v, _ in moments]
        # The (mean, rstd) each row group is normalized with: source rows first, then the target
        # rows when they differ (their own statistics, or DAN's own epsilon).
        row_stats = [(m, r) for (m, _, _), r in zip(moments, rstds, strict=True)]
        if split and not own_target and target_epsilon is not None:
            row_stats.append((moments[0][0], tf.math.rsqrt(moments[0][1] + target_epsilon)))
        gamma_b = tf.reshape(gamma, stat_shape)
        scales = [gamma_b * r for _, r in row_stats]
        offsets = [
            tf.reshape(beta, stat_shape) - m * s
            for (m, _), s in zip(row_stats, scales, strict=True)
        ]
        is_source = _source_rows(x, num_source) if split else None
        two_groups = is_source if len(row_stats) == 2 else None
        scale, offset = _per_sample(two_groups, scales), _per_sample(two_groups, offsets)
        y = x32 * scale + offset

        def grad(dy, *unused_stat_grads):
            g = tf.cast(dy, tf.float32)
            # [N, 1, 1, C]: per-sample sums of dy and dy * x; sliced per part on these small
            # tensors rather than on the activations.
            sum_g = tf.reduce_sum(g, sample_axes, keepdims=True)
            sum_gx = tf.reduce_sum(g * x32, sample_axes, keepdims=True)
            bounds = [(0, num_source), (num_source, None)] if split else [(0, None)]
            local = [
                (tf.reduce_sum(sum_g[a:b], 0, keepdims=True), tf.reduce_sum(sum_gx[a:b], 0, True))
                for a, b in bounds
            ]
            # Every sample is normalized with the statistics of its row group in the forward.
            d_gamma = tf.zeros_like(sum_g[:1])
            for k, (part_g, part_gx) in enumerate(local):
                mean, rstd = row_stats[min(k, len(row_stats) - 1)]
                d_gamma += rstd * (part_gx - mean * part_g)
            d_beta = tf.reduce_sum(sum_g, 0, keepdims=True)
            # dx = dy * A + x * B + C. A = gamma * rstd of the part used; B and C are the
            # gradient through the statistics, only for the parts that own them.
            bs, cs = [], []
            for k, (mean, _, count) in enumerate(moments):
                part_g = _replica_sum(local[k][0], synchronized)
                part_gx = _replica_sum(local[k][1], synchronized)
                mean_g = part_g / count
                mean_gxhat = rstds[k] * (part_gx - mean * part_g) / count
                b = -scales[k] * rstds[k] * mean_gxhat
                bs.append(b)
                cs.append(-scales[k] * mean_g - b * mean)
            if split and not own_target:  # DAN: the target rows get no statistics gradient
                zero = tf.zeros_like(bs[0])
                bs, cs = [bs[0], zero], [cs[0], zero]
            dx = g * scale + x32 * _per_sample(is_source, bs) + _per_sample(is_source, cs)
            return tf.cast(dx, x.dtype), tf.reshape(d_gamma, [-1]), tf.reshape(d_beta, [-1])

        stats = [(tf.reshape(m, [-1]), tf.reshape(v, [-1])) for m, v, _ in moments]
        return (y, stats), grad

    y, stats = kernel(x, gamma, beta)
    stats = [(tf.stop_gradient(m), tf.stop_gradient(v)) for m, v in stats]
    return y, stats


def _moments(x, sample_axes, channel_axis, synchronized):
    """float32 mean, variance (keepdims) and element count per channel over `[0] + sample_axes`."""
    axes = [0, *sample_axes]
    ctx = tf.distribute.get_replica_context()
    count = tf.cast(tf.size(x) // tf.shape(x)[channel_axis], tf.float32)
    if synchronized and ctx is not None and ctx.num_replicas_in_sync > 1:
        total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(x, axes, keepdims=True))
        squares = ctx.all_reduce(
            tf.distribute.ReduceOp.SUM, tf.reduce_sum(tf.square(x), axes, keepdims=True)
        )
        count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, count)
        mean = total / count
        variance = tf.maximum(squares / count - tf.square(mean), 0.0)
        return mean, variance, count
    mean, variance = tf.nn.moments(x, axes, keepdims=True)
    return mean, variance, count


def _source_rows(x, num_source):
    """Boolean `[N, 1, ..., 1]`, True for the first `num_source` samples."""
    rows = tf.range(tf.shape(x)[0]) < num_source
    return tf.reshape(rows, [-1] + [1] * (x.shape.rank - 1))


def _per_sample(is_source, values):
    """`values[0]` for source rows and `values[1]` for the others (`values[0]` if one value)."""
    if is_source is None or len(values) == 1:
        return values[0]
    return tf.where(is_source, values[0], values[1])


class SourceFirstNormalization(keras.layers.BatchNormalization):
    """Base of the batch-norm variants that treat the first `num_source` samples as source.

    Subclasses set `target_statistics` (`"source"` or `"own"`). Variables, initializers,
    regularizers and `get_config` are those of `keras.layers.BatchNormalization`; batch
    renormalization and masking are not supported.
    """

    target_statistics = None
    target_epsilon = None  # DAN's own epsilon for the target rows; None: `epsilon`

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
        if batch is None:
            tf.debugging.assert_less_equal(
                num_source, tf.shape(inputs)[0], message="`num_source` exceeds the batch size"
            )
        return num_source

    def _gamma_beta(self, channels):
        gamma = self.gamma if self.gamma is not None else tf.ones([channels])
        beta = self.beta if self.beta is not None else tf.zeros([channels])
        return tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32)

    def call(self, inputs, training=None, mask=None, num_source=None):
        if mask is not None:
            raise ValueError(f"{type(self).__name__} does not support masking. Received: mask")
        num_source = self._resolve_num_source(inputs, num_source)
        gamma, beta = self._gamma_beta(inputs.shape[self.axis])
        if not (training and self.trainable):
            shape = [1] * len(inputs.shape)
            shape[self.axis] = -1
            scale = gamma * tf.math.rsqrt(self.moving_variance + self.epsilon)
            offset = beta - self.moving_mean * scale
            y = tf.cast(inputs, tf.float32) * tf.reshape(scale, shape) + tf.reshape(offset, shape)
            return tf.cast(y, self.compute_dtype)
        if num_source == 0:
            if self.target_statistics == "source":
                raise ValueError(
                    f"{type(self).__name__} needs at least one source sample in training (its "
                    "statistics come from the source). Received: num_source=0"
                )
            num_source = None  # split batch norm: the whole batch is one (target) part
        y, stats = source_first_normalize(
            inputs,
            gamma,
            beta,
            num_source=num_source,
            target_statistics=self.target_statistics,
            axis=self.axis,
            epsilon=self.epsilon,
            synchronized=self.synchronized,
            target_epsilon=self.target_epsilon,
        )
        m = self.momentum
        for mean, variance in stats:  # source first, then the target's own statistics if any
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
        return tf.cast(y, self.compute_dtype)

    def compute_output_spec(self, inputs, training=None, mask=None, num_source=None):
        return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        # Renormalization is rejected by the constructor; keep the config minimal and exact.
        for key in ("renorm", "renorm_clipping", "renorm_momentum"):
            config.pop(key, None)
        return config
