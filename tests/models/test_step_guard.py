"""Tests of `uada.models.step_guard`: each guard on hand-computed numbers, eager and in a graph."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from uada.models import step_guard


def _sgd():
    return keras.optimizers.SGD(0.5)


@pytest.mark.parametrize("keep", [False, True])
def test_restore_unless_puts_back_the_snapshot_exactly(keep):
    moving = keras.Variable([0.1, 1e-30, -3.0], trainable=False, name="moving_mean")
    count = keras.Variable(7, dtype="int64", trainable=False, name="count")

    @tf.function
    def step():
        values = step_guard.snapshot([moving, count])
        moving.assign(moving.value * 3.0 + np.nan)  # what a NaN forward pass leaves behind
        count.assign_add(5)
        step_guard.restore_unless(tf.constant(keep), [moving, count], values)

    step()
    if keep:
        assert np.all(np.isnan(moving.numpy())) and int(count.numpy()) == 12
    else:
        np.testing.assert_array_equal(moving.numpy(), np.float32([0.1, 1e-30, -3.0]))
        assert int(count.numpy()) == 7


def test_a_non_finite_gradient_skips_the_apply_and_leaves_the_optimizer_alone():
    optimizer = _sgd()
    weights = keras.Variable([1.0, 2.0], name="w")
    optimizer.build([weights])
    for gradient, expected, iterations in (
        ([np.inf, 1.0], [1.0, 2.0], 0),  # skipped
        ([2.0, -4.0], [0.0, 4.0], 1),  # w - 0.5 * g
    ):
        grads, finite = step_guard.reduce_gradients([tf.constant(gradient)], optimizer, clip=5.0)
        applied, overflow = step_guard.apply_or_skip(
            optimizer, grads, [weights], losses_finite=tf.constant(True), grads_finite=finite
        )
        assert bool(applied) == (iterations == 1) and not bool(overflow)
        np.testing.assert_array_equal(weights.numpy(), expected)
        assert int(optimizer.iterations.numpy()) == iterations


def test_a_non_finite_loss_skips_the_apply_even_with_finite_gradients():
    optimizer = _sgd()
    weights = keras.Variable([1.0], name="w")
    optimizer.build([weights])
    applied, _ = step_guard.apply_or_skip(
        optimizer, [tf.constant([1.0])], [weights],
        losses_finite=tf.constant(False), grads_finite=tf.constant(True),
    )  # fmt: skip
    assert not bool(applied) and weights.numpy()[0] == 1.0


def test_the_clip_bounds_the_true_gradient_after_unscaling():
    # A scale of 2**10: the scaled gradients 3 * 2**10 and -7 * 2**10 are the true 3 and -7;
    # the clip at 5 keeps 3 and bounds -7 (clipping before unscaling would give 5/1024).
    optimizer = _loss_scale_optimizer(2.0**10)
    scaled = tf.constant([3.0 * 2**10, -7.0 * 2**10])
    (grad,), finite = step_guard.reduce_gradients([scaled], optimizer, clip=5.0)
    np.testing.assert_array_equal(grad.numpy(), [3.0, -5.0])
    assert bool(finite)
    (grad,), _ = step_guard.reduce_gradients([scaled], optimizer, clip=None)
    np.testing.assert_array_equal(grad.numpy(), [3.0, -7.0])


def test_an_infinite_gradient_is_not_finite_although_the_clip_would_hide_it():
    (grad,), finite = step_guard.reduce_gradients([tf.constant([-np.inf, 1.0])], _sgd(), clip=5.0)
    np.testing.assert_array_equal(grad.numpy(), [-5.0, 1.0])
    assert not bool(finite)


def _loss_scale_optimizer(scale, count=0, growth=4):
    optimizer = keras.optimizers.LossScaleOptimizer(
        _sgd(), initial_scale=scale, dynamic_growth_steps=growth
    )
    optimizer.build([keras.Variable([0.0], name="w")])
    optimizer.step_counter.assign(count)
    return optimizer


@pytest.mark.parametrize(
    "scale, count, grads_finite, losses_finite, new_scale, new_count, overflow",
    [
        (2.0**15, 2, False, True, 2.0**14, 0, True),  # overflow: halve, restart the count
        (0.5, 2, False, True, 0.25, 0, False),  # below 1 the scale is not the cause
        (2.0**15, 2, True, True, 2.0**15, 3, False),  # a finite step counts
        (2.0**15, 3, True, True, 2.0**16, 0, False),  # the 4th finite step doubles
        (2.0**15, 2, False, False, 2.0**15, 2, False),  # a bad input leaves the scale alone
    ],
)
def test_update_loss_scale_follows_keras_rule(scale, count, grads_finite, losses_finite,
                                              new_scale, new_count, overflow):  # fmt: skip
    optimizer = _loss_scale_optimizer(scale, count)
    result = step_guard.update_loss_scale(
        optimizer, tf.constant(grads_finite), tf.constant(losses_finite)
    )
    assert bool(result) == overflow
    assert float(optimizer.dynamic_scale.numpy()) == new_scale
    assert int(optimizer.step_counter.numpy()) == new_count


def test_update_loss_scale_of_a_plain_optimizer_is_no_overflow():
    assert not bool(step_guard.update_loss_scale(_sgd(), tf.constant(False), tf.constant(True)))


def test_count_skip_counts_skips_and_resets_on_an_applied_step():
    skipped = keras.Variable(0, dtype="int64", trainable=False, name="skipped_steps")
    consecutive = keras.Variable(0, dtype="int64", trainable=False, name="consecutive_skips")
    history = []
    for applied, overflow in [(False, False), (False, True), (False, False), (True, False),
                              (False, False)]:  # fmt: skip
        step_guard.count_skip(tf.constant(applied), tf.constant(overflow), skipped, consecutive)
        history.append((int(skipped.numpy()), int(consecutive.numpy())))
    # An overflow counts as skipped but neither counts toward nor resets the consecutive skips.
    assert history == [(1, 1), (2, 1), (3, 2), (3, 0), (4, 1)]


def test_update_mean_leaves_a_skipped_steps_nan_out():
    mean = keras.metrics.Mean(name="loss")
    step_guard.update_mean(mean, tf.constant(2.0), tf.constant(1.0))
    step_guard.update_mean(mean, tf.constant(np.nan), tf.constant(0.0))
    step_guard.update_mean(mean, tf.constant(4.0), tf.constant(1.0))
    assert float(mean.result()) == 3.0


def test_loss_scaled_wraps_once_and_inner_optimizer_unwraps():
    sgd = _sgd()
    wrapped = step_guard.loss_scaled(sgd)
    assert isinstance(wrapped, keras.optimizers.LossScaleOptimizer)
    assert step_guard.loss_scaled(wrapped) is wrapped
    assert step_guard.inner_optimizer(wrapped) is sgd and step_guard.inner_optimizer(sgd) is sgd


def test_on_two_replicas_gradients_are_summed_checked_clipped_and_applied_alike(mirrored_strategy):
    # Replica 0 has gradient 4, replica 1 gradient 8 (or inf): the global gradient 12 is clipped
    # to 5 and each replica applies 5 / 2, which the optimizer sums back to 5.
    strategy = mirrored_strategy
    with strategy.scope():
        weights = keras.Variable([10.0], name="w")
        optimizer = _sgd()
        optimizer.build([weights])

    @tf.function
    def step(second):
        def replica_fn():
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            grad = tf.where(tf.equal(replica, 0), 4.0, second)
            total = step_guard.sum_over_replicas(grad)
            grads, finite = step_guard.reduce_gradients([tf.reshape(grad, [1])], optimizer, 5.0)
            applied, _ = step_guard.apply_or_skip(
                optimizer, grads, [weights], losses_finite=tf.constant(True), grads_finite=finite
            )
            return total, applied

        return strategy.run(replica_fn)

    total, applied = step(tf.constant(8.0))
    assert [float(t) for t in strategy.experimental_local_results(total)] == [12.0, 12.0]
    assert all(bool(a) for a in strategy.experimental_local_results(applied))
    np.testing.assert_array_equal(weights.numpy(), [10.0 - 0.5 * 5.0])
    _, applied = step(tf.constant(np.inf))
    assert not any(bool(a) for a in strategy.experimental_local_results(applied))
    np.testing.assert_array_equal(weights.numpy(), [7.5])
    assert int(optimizer.iterations.numpy()) == 1
