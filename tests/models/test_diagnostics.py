"""The diagnostics of the adversarial game: `losses.confusion_clipped_fraction` and the
`confusion_clipped_fraction` / `confusion_gradient_ratio` metrics of `UADAModel`."""

import numpy as np
import pytest
import tensorflow as tf

from uada.layers import domain_split
from uada.models import build_uada_model, losses

SIZE = (32, 64)
NUM_SOURCE = 2


def test_confusion_clipped_fraction_counts_target_positions_outside_0_clip():
    logits = np.array(
        [
            [50.0, 100.0, 1e4, 3.0],  # source: would be clipped, must not count
            [0.0, 1.8, 1.9, 2.0],  # the threshold is log(e^2 - 1) = 1.8546
            [-1e4, 5.0, 1.0, -3.0],  # very negative: c = -log(1 + 1e-9) ~ 0, not clipped
        ],
        dtype="float32",
    ).reshape(3, 1, 4, 1)
    # In float32, as the loss: 1 + 1e-9 rounds to 1, so c = -0 (not < 0) at -1e4.
    c = -np.log(np.float32(1.0) / (np.float32(1.0) + np.exp(logits[1:])) + np.float32(1e-9))
    expected = np.mean((c < 0) | (c > 2))
    assert expected == 3 / 8  # 1.9, 2.0 and 5.0
    fraction = losses.confusion_clipped_fraction(tf.constant(logits), 1)
    assert float(fraction) == pytest.approx(expected, abs=1e-7)
    # The source row (all four clipped if it counted) changes nothing; no target: 0, not NaN.
    assert float(losses.confusion_clipped_fraction(tf.constant(logits[[0, 1]]), 1)) == 0.5
    assert float(losses.confusion_clipped_fraction(tf.constant(logits), 3)) == 0.0
    # A lower clip counts more positions: 1.0 (c = 1.31) too.
    assert float(losses.confusion_clipped_fraction(tf.constant(logits), 1, clip=1.0)) == 0.625


def test_clipped_positions_are_those_without_a_confusion_gradient():
    logits = tf.constant(np.linspace(-1.5, 6.0, 16, dtype="float32").reshape(4, 2, 2, 1))
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = losses.confusion_loss(logits, 1)
    no_gradient = tape.gradient(loss, logits).numpy()[1:] == 0
    assert 0 < no_gradient.mean() < 1
    assert float(losses.confusion_clipped_fraction(logits, 1)) == no_gradient.mean()


def _model(**kwargs):
    return build_uada_model(
        "uada", "resnet_tiny", "dan", weights=None, image_size=SIZE, steps_per_epoch=5, **kwargs
    )


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    source = rng.uniform(0, 255, (NUM_SOURCE, *SIZE, 3)).astype("float32")
    target = rng.uniform(0, 255, (2, *SIZE, 3)).astype("float32")
    labels = rng.integers(0, 19, (NUM_SOURCE, *SIZE)).astype("int32")
    labels[:, :4] = 255
    return (source, labels), target


def _one_step_logs(model, batch):
    """The logs of one real training step (`fit`; the means over one step are its values)."""
    history = model.fit(
        tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=1, epochs=1, verbose=0
    ).history
    return {name: values[0] for name, values in history.items()}


def _reference_ratio(model, batch, lambda_ramp):
    """lambda * ramp * ||dL_conf/dZ|| / ||dL_seg/dZ||, each gradient from its own tape, for the
    next step of `model` (with D as the step's D update leaves it: unchanged at learning rate 0)."""
    (source, labels), target = batch
    with domain_split(NUM_SOURCE):
        z = model.representation(np.concatenate([source, target]), training=True)
    with tf.GradientTape() as tape:
        tape.watch(z)
        with domain_split(None):
            logits = model.segmentation_head(z[:NUM_SOURCE], training=True)
        seg_loss = losses.segmentation_loss(labels, logits, num_classes=model.num_classes)
    seg_grad = tape.gradient(seg_loss, z).numpy()
    # The G step's noise n2 is the update numbered step + 1, step = D + G steps taken (0 here).
    step = int(model.domain_optimizer.iterations) + int(model.seg_optimizer.iterations)
    with tf.GradientTape() as tape:
        tape.watch(z)
        conf_logits = model.domain_classifier(model._with_noise(z, step + 1), training=True)
        conf_loss = losses.confusion_loss(conf_logits, NUM_SOURCE)
    conf_grad = tape.gradient(conf_loss, z).numpy()
    assert np.all(seg_grad[NUM_SOURCE:] == 0) and np.any(seg_grad[:NUM_SOURCE] != 0)
    assert np.all(conf_grad[:NUM_SOURCE] == 0) and np.any(conf_grad[NUM_SOURCE:] != 0)
    return lambda_ramp * np.linalg.norm(conf_grad) / np.linalg.norm(seg_grad), conf_logits


def test_confusion_gradient_ratio_matches_two_separate_gradients():
    tf.keras.utils.set_random_seed(0)
    model = _model(ramp_epochs=0, lambda_conf=0.5)
    model.compile(learning_rate=0.0)  # the step's D update leaves D as the reference sees it
    batch = _batch()
    expected, conf_logits = _reference_ratio(model, batch, lambda_ramp=0.5)
    logs = _one_step_logs(model, batch)
    assert expected > 0
    assert float(logs["confusion_gradient_ratio"]) == pytest.approx(expected, rel=1e-4)
    assert float(logs["confusion_clipped_fraction"]) == pytest.approx(
        float(losses.confusion_clipped_fraction(conf_logits, NUM_SOURCE)), abs=1e-7
    )


def test_confusion_gradient_ratio_is_zero_during_the_ramp():
    tf.keras.utils.set_random_seed(0)
    model = _model(ramp_epochs=1, lambda_conf=0.5)  # ramp 0 for the first 5 G steps
    model.compile()
    logs = _one_step_logs(model, _batch())
    assert float(logs["confusion_gradient_ratio"]) == 0.0
    assert 0.0 <= float(logs["confusion_clipped_fraction"]) <= 1.0


@pytest.mark.parametrize("mode", ["uada", "source_only"])
def test_fit_logs_the_diagnostics_in_uada_mode_only(mode):
    tf.keras.utils.set_random_seed(0)
    kwargs = {"ramp_epochs": 0, "lambda_conf": 0.5}
    model = build_uada_model(mode, "resnet_tiny", "dan", image_size=SIZE, **kwargs)
    model.compile()
    (source, labels), target = _batch()
    batch = (source, labels) if mode == "source_only" else ((source, labels), target)
    history = model.fit(
        tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=2, epochs=1, verbose=0
    ).history
    names = {"confusion_clipped_fraction", "confusion_gradient_ratio"}
    if mode == "source_only":
        assert not names & set(history)
        return
    assert names <= set(history)
    assert 0.0 <= history["confusion_clipped_fraction"][0] <= 1.0
    assert history["confusion_gradient_ratio"][0] > 0.0
