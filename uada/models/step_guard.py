"""The guards of a training step: an update that cannot be trusted changes nothing.

`UADAModel` writes Eq. 2 of the paper; this module makes each of its two updates safe under
`tf.distribute`, float16 loss scaling and bad inputs. Each update's gradients go through, in order:

1. sum over the replicas (`reduce_gradients`): every replica then has the same gradient and takes
   the same decisions below;
2. divide by the loss scale: the scaled float16 gradient may overflow, and the clip bound is meant
   for the true gradient;
3. finiteness check: before the clip, which would turn an infinite gradient into a finite one;
4. element-wise clip: the original's `clip_by_value(g, -5, 5)`;
5. divide by the number of replicas: the optimizer sums the replicas' gradients once more;
6. apply only if losses and gradients are finite (`apply_or_skip`): a skipped update leaves the
   weights and the optimizer state as they were;
7. update the float16 loss scale (`update_loss_scale`): halve on overflow, grow after a run of
   finite steps;

and each step is bracketed by `snapshot` / `restore_unless` of the moving statistics (the forward
pass moved them before anyone knew whether the step would be applied) and ends with `count_skip`.
`TrainingGuard`, the callback `UADAModel.fit` adds, stops training with a clear error on invalid
labels or after too many consecutive skipped steps (`NonFiniteLossError`).
"""

import keras
import tensorflow as tf

from uada import framework_internals


class NonFiniteLossError(FloatingPointError):
    """Training stopped after too many consecutive steps with a non-finite loss or gradient."""


def snapshot(variables):
    """The current values of `variables`, to put back with `restore_unless`.

    Taken before the forward pass: normalization layers update their moving statistics during
    it, before the losses and gradients say whether the step is kept."""
    return [tf.identity(v.value) for v in variables]


def restore_unless(keep, variables, values):
    """Assigns `values` (a `snapshot`) back to `variables` unless `keep` (a bool tensor) holds.

    A skipped step must leave no trace, moving statistics included: with NaN inputs they would
    be NaN from then on."""
    for variable, value in zip(variables, values, strict=True):
        variable.assign(tf.where(keep, variable.value, value))


def sum_over_replicas(value):
    """All-reduce sum over the replicas (the value itself on one replica).

    Every decision of a step (finite or not) and every global mean must be the same on all
    replicas, or their variables drift apart."""
    if tf.distribute.get_strategy().num_replicas_in_sync == 1:
        return value
    return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, value)


def all_finite(tensors):
    """Whether every element of every tensor is finite (True for no tensors)."""
    if not tensors:
        return tf.constant(True)
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])


def reduce_gradients(grads, optimizer, clip):
    """Guards 1-5 of the module docstring: returns `(gradients, finite)`.

    Args:
        grads: this replica's gradients of `optimizer.scale_loss(loss)`.
        optimizer: the update's optimizer; a `keras.optimizers.LossScaleOptimizer` is unscaled.
        clip: element-wise bound, or `None` for no clipping.

    Returns:
        The gradients to apply (this replica's share of the clipped global gradient) and a bool
        scalar, the same on every replica: whether the unscaled global gradient is finite.
    """
    num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if num_replicas > 1:
        grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        inverse = 1.0 / optimizer.dynamic_scale.value  # a power of two: exact
        grads = [g * tf.cast(inverse, g.dtype) for g in grads]
    finite = all_finite(grads)
    if clip is not None:
        grads = [tf.clip_by_value(g, -clip, clip) for g in grads]
    if num_replicas > 1:
        grads = [g / num_replicas for g in grads]
    return grads, finite


def apply_or_skip(optimizer, grads, variables, *, losses_finite, grads_finite):
    """Guards 6-7: applies `grads` when the losses and gradients are finite, then updates the
    loss scale. Returns `(applied, overflow)` (see `update_loss_scale`)."""
    applied = losses_finite & grads_finite
    apply_if(applied, inner_optimizer(optimizer), grads, variables)
    return applied, update_loss_scale(optimizer, grads_finite, losses_finite)


def apply_if(condition, optimizer, grads, variables):
    """`optimizer.apply(grads, variables)` when `condition` holds; otherwise nothing changes.

    `condition` must be the same on every replica. Under a strategy whose optimizer update goes
    through `merge_call` (MirroredStrategy), a `cond` whose branch calls `merge_call` is not
    allowed in a replica context; as Keras' `LossScaleOptimizer` does, the `cond` is then taken in
    the cross-replica context and the update run back in each replica.
    """

    def apply():
        optimizer.apply(grads, variables)

    if framework_internals.strategy_supports_no_merge_call():
        tf.cond(condition, apply, lambda: None)
        return

    def cross_replica(distribution, condition, grads):
        condition = distribution.experimental_local_results(condition)[0]

        def apply_each():
            distribution.extended.call_for_each_replica(
                lambda g: optimizer.apply(g, variables), args=(grads,)
            )

        tf.cond(condition, apply_each, lambda: None)

    tf.distribute.get_replica_context().merge_call(cross_replica, args=(condition, grads))


def loss_scaled(optimizer):
    """`optimizer` wrapped in a `keras.optimizers.LossScaleOptimizer` (unless it is one).

    Under float16 both updates need loss scaling, each with its own scale."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer, name=f"{optimizer.name}_loss_scale")


def inner_optimizer(optimizer):
    """The optimizer that applies the (already unscaled) gradients.

    `reduce_gradients` unscales before it clips, so the `LossScaleOptimizer`'s own `apply`
    (which would unscale again and skip by its own check) is bypassed."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.inner_optimizer
    return optimizer


def update_loss_scale(optimizer, grads_finite, losses_finite):
    """Updates a `LossScaleOptimizer`'s dynamic scale by its own rule; returns `overflow`.

    The rule is Keras': halve the scale (and restart the count) after a step whose unscaled
    gradients are not finite, double it after `dynamic_growth_steps` finite steps. The model
    applies the gradients itself (it unscales before clipping), so it also keeps the scale, in
    the optimizer's own variables. A step whose losses are not finite (bad input) leaves the
    scale alone. `overflow` is True for a step skipped because of the scale: finite losses,
    non-finite gradients and a scale still >= 1 (below 1 the scale cannot be the cause).
    Returns False for any other optimizer.
    """
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return tf.constant(False)
    scale, counter = optimizer.dynamic_scale, optimizer.step_counter
    old_scale, old_count = tf.identity(scale.value), tf.identity(counter.value)
    grow = grads_finite & tf.equal(old_count, optimizer.dynamic_growth_steps - 1)
    factor = tf.where(grads_finite, tf.where(grow, 2.0, 1.0), 0.5)
    scale.assign(tf.where(losses_finite, old_scale * factor, old_scale))
    new_count = tf.where(grads_finite & ~grow, old_count + 1, tf.zeros_like(old_count))
    counter.assign(tf.where(losses_finite, new_count, old_count))
    return losses_finite & ~grads_finite & (old_scale >= 1.0)


def count_skip(applied, overflow, skipped_steps, consecutive_skips):
    """Counts a step that was not applied in `skipped_steps` and `consecutive_skips` (int64
    variables); an applied step resets `consecutive_skips` to 0.

    A float16 overflow (`overflow`) is the loss scale finding its level, not a sign of bad
    training: it counts in `skipped_steps` but neither counts toward nor resets the
    consecutive skips after which training stops.
    """
    skipped = tf.cast(tf.logical_not(applied), tf.int64)
    skipped_steps.assign_add(skipped)
    counted = skipped * tf.cast(tf.logical_not(overflow), tf.int64)
    consecutive_skips.assign((consecutive_skips.value + counted) * skipped)


def update_mean(metric, value, weight):
    """Adds `value` to a `Mean` with weight 0 or 1 (a skipped step's NaN never enters).

    `0 * NaN` is NaN: the value itself is replaced, not only weighted away."""
    metric.update_state(tf.where(weight > 0, value, tf.zeros_like(value)), sample_weight=weight)


class TrainingGuard(keras.callbacks.Callback):
    """Stops `UADAModel.fit` with a clear error on invalid labels (when the step's own assertion
    could not raise, e.g. under XLA) or after `max_consecutive_skips` consecutive skipped steps.
    `UADAModel.fit` adds it; pass your own to the `callbacks` to replace it."""

    def on_train_batch_end(self, batch, logs=None):
        model = self.model
        if int(keras.ops.convert_to_numpy(model._invalid_label_steps.value)) > 0:
            model.stop_training = True
            raise tf.errors.InvalidArgumentError(
                None,
                None,
                f"`source_labels` must hold class ids 0..{model.num_classes - 1} or the ignore "
                "label 255; a batch held other values (the step was skipped).",
            )
        consecutive = int(keras.ops.convert_to_numpy(model._consecutive_skips.value))
        if consecutive >= model.max_consecutive_skips:
            model.stop_training = True
            raise NonFiniteLossError(
                f"{consecutive} consecutive training steps were skipped because a loss or a "
                "gradient was not finite (NaN or Inf). Check the input images (finite, RGB in "
                "[0, 255]) and the learning rate. Received: "
                f"max_consecutive_skips={model.max_consecutive_skips}"
            )
