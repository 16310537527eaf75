"""Tests of the UADA losses and schedules against hand-computed values."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from uada.models import losses, schedules


def _softmax_ce(labels, logits):
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]


def test_segmentation_loss_ignores_255_in_value_and_gradient():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 19, (2, 4, 6)).astype("int32")
    labels[0, :2] = 255
    logits = tf.Variable(rng.normal(size=(2, 4, 6, 19)).astype("float32"))
    with tf.GradientTape() as tape:
        loss = losses.segmentation_loss(labels, logits)
    grad = tape.gradient(loss, logits).numpy()
    valid = labels != 255
    expected = _softmax_ce(np.where(valid, labels, 0), logits.numpy())[valid].mean()
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6)
    assert np.all(grad[~valid] == 0)
    assert np.all(np.abs(grad[valid]).sum(-1) > 0)


def test_segmentation_loss_with_no_valid_pixel_is_zero():
    labels = np.full((1, 2, 2), 255, "int32")
    assert losses.segmentation_loss(labels, np.ones((1, 2, 2, 19), "float32")).numpy() == 0.0


def test_out_of_range_labels_never_reach_the_cross_entropy():
    # Label 19 would index past the logits (a NaN on GPU / XLA); it is left out instead.
    labels = np.array([[[19, 3]]], "int32")
    loss_sum, count = losses.segmentation_loss_sum(labels, np.zeros((1, 1, 2, 19)), num_classes=19)
    np.testing.assert_allclose([loss_sum.numpy(), count.numpy()], [np.log(19.0), 1.0], rtol=1e-6)


@pytest.mark.parametrize("bad", [19, 254, -1])
def test_assert_valid_labels_raises_with_the_value(bad):
    labels = np.array([[0, 18, 255, bad]], "int32")
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=f"(?s)source_labels.*must hold class ids 0..18.*for example:.*{bad}",
    ):
        losses.assert_valid_labels(labels, name="source_labels")
    assert losses.invalid_label_count(labels).numpy() == 1
    assert losses.assert_valid_labels(labels[:, :3]).numpy() == 0


def _d_logits(source, target):
    """D logits [2, 1, 2, 1]: one source sample, one target sample, two positions each."""
    return tf.Variable(np.array([source, target], "float32").reshape(2, 1, 2, 1))


def test_domain_loss_value_and_clip_at_5():
    logits = _d_logits([-1.0, 2.0], [0.5, -3.0])
    x = logits.numpy().ravel()
    y = np.array([0, 0, 1, 1])
    expected = np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x))))
    np.testing.assert_allclose(losses.domain_loss(logits, 1).numpy(), expected, rtol=1e-6)

    far = _d_logits([30.0, 30.0], [-30.0, -30.0])  # mean loss 30 -> clipped to 5, no gradient
    with tf.GradientTape() as tape:
        loss = losses.domain_loss(far, 1)
    assert loss.numpy() == 5.0
    assert np.all(tape.gradient(loss, far).numpy() == 0)


def test_confusion_loss_is_zero_on_source_and_clipped_at_2():
    logits = _d_logits([5.0, -5.0], [0.0, 10.0])
    with tf.GradientTape() as tape:
        loss = losses.confusion_loss(logits, 1)
    grad = tape.gradient(loss, logits).numpy().reshape(2, 2)
    # target: -log(1 - sigmoid(0)) = log 2; -log(1 - sigmoid(10)) = 10.00005 -> 2. Mean over 4.
    np.testing.assert_allclose(loss.numpy(), (np.log(2.0) + 2.0) / 4, rtol=1e-6)
    assert np.all(grad[0] == 0)  # source positions
    np.testing.assert_allclose(
        grad[1, 0], 0.5 / 4, rtol=1e-5
    )  # d/dl -log(sigmoid(-l)) = sigmoid(l)
    assert grad[1, 1] == 0  # clipped


def test_domain_accuracy():
    logits = _d_logits([-1.0, 2.0], [0.5, -3.0])
    assert losses.pooled_domain_accuracy(logits, 1).numpy() == 0.5


def test_l2_regularization_is_keras_l2():
    kernels = [
        np.random.default_rng(0).normal(size=(3, 3, 4, 5)).astype("float32"),
        np.ones(3, "float32"),
    ]
    expected = sum(keras.regularizers.L2(8.5e-5)(k) for k in kernels)
    np.testing.assert_allclose(losses.l2_regularization(kernels).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(
        losses.l2_regularization(kernels).numpy(),
        0.00017 * sum((k.astype("float64") ** 2).sum() for k in kernels) / 2,
        rtol=1e-6,
    )


def test_learning_rate_halves_after_epochs_9_and_16():
    schedule = schedules.learning_rate_schedule(steps_per_epoch=10)
    rates = [float(schedule(step)) for step in (0, 89, 90, 159, 160, 10_000)]
    np.testing.assert_allclose(rates, [0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025])
    with pytest.raises(ValueError, match="decay_epochs"):
        schedules.learning_rate_schedule(decay_epochs=(16, 9))


def test_instance_noise_and_ramp():
    sigmas = [float(schedules.instance_noise_sigma(s)) for s in (0, 10_000, 20_000, 50_000)]
    np.testing.assert_allclose(sigmas, [0.1, 0.05, 0.0, 0.0], atol=1e-9)
    ramp = [float(schedules.confusion_ramp(s, ramp_steps=1487)) for s in (0, 1486, 1487)]
    assert ramp == [0.0, 0.0, 1.0]
