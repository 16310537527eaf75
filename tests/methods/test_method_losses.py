"""The methods' losses against numpy computations on small hand-made batches (no model)."""

import numpy as np
import pytest
import tensorflow as tf

from uada.methods import entropy, output_space_discriminator, self_training
from uada.models import losses

# float32 against float64 on a handful of terms: a few units of float32's roundoff (2**-24 ~ 6e-8)
# per operation, a dozen operations deep.
RTOL = 1e-6


def _softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(-1, keepdims=True)


def _logits():
    """Logits `[2, 2, 3, 4]` (4 classes): a uniform pixel, a near-one-hot pixel whose small
    probabilities underflow float32 (`p log p` is 0 there), and random ones."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 2, 3, 4)) * 3
    logits[0, 0, 0] = 0.0  # p = 1/4 each: entropy log 4, normalized 1
    logits[0, 0, 1] = [200.0, 0.0, -5.0, 1.0]  # p = (1, e^-200, ...): entropy ~ 0
    return logits.astype("float32")


def test_self_information_and_entropy_equal_advents_formulas():
    logits = _logits()
    p = _softmax(logits.astype(np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.nan_to_num(-p * np.log(p)) / np.log(4)  # 0 log 0 = 0
    maps = entropy.weighted_self_information(logits).numpy()
    np.testing.assert_allclose(maps, expected, rtol=RTOL, atol=1e-7)
    assert maps[0, 0, 0].sum() == pytest.approx(1.0, rel=RTOL)  # the uniform pixel
    assert maps[0, 0, 1].sum() < 1e-6  # the confident pixel
    # MinEnt: the mean over pixels of the normalized entropy, sum_c I_c.
    loss = entropy.entropy_loss(logits).numpy()
    assert loss == pytest.approx(expected.sum(-1).mean(), rel=RTOL)


def test_entropy_gradient_is_finite_where_probabilities_underflow():
    logits = tf.Variable(_logits())
    with tf.GradientTape() as tape:
        loss = entropy.entropy_loss(logits)
    grad = tape.gradient(loss, logits).numpy()
    assert np.all(np.isfinite(grad))
    # Analytic: dE/dl_k = -p_k (log p_k + E_raw) / log C per pixel, over the pixel count.
    p = _softmax(logits.numpy().astype(np.float64))
    log_p = np.log(np.maximum(p, 1e-300))
    raw = -(p * log_p).sum(-1, keepdims=True)
    expected = -p * (log_p + raw) / np.log(4) / (2 * 2 * 3)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-9)


def _bce(logits, label):
    return np.maximum(logits, 0) - logits * label + np.log1p(np.exp(-np.abs(logits)))


def test_output_space_discriminator_losses():
    # D's logits [3, 1, 2, 1]: 1 source sample then 2 target samples (unequal counts: each domain
    # is its own mean, halved).
    d = np.array([0.3, -1.2, 2.0, -0.5, 4.0, 0.1], "float32").reshape(3, 1, 2, 1)
    d64 = d.astype(np.float64)
    expected = (_bce(d64[:1], 0).mean() + _bce(d64[1:], 1).mean()) / 2
    got = output_space_discriminator.discriminator_loss(d, num_source=1).numpy()
    assert got == pytest.approx(expected, rel=RTOL)
    # R and S's adversarial loss: the target logits against the source label.
    got = output_space_discriminator.adversarial_loss(d[1:]).numpy()
    assert got == pytest.approx(_bce(d64[1:], 0).mean(), rel=RTOL)


def test_the_discriminator_halves_the_size_five_times_with_the_originals_padding():
    d = output_space_discriminator.build_output_space_discriminator(4)
    assert [layer.filters for layer in d.layers if hasattr(layer, "filters")] == [
        64, 128, 256, 512, 1,
    ]  # fmt: skip
    for height, width in ((32, 64), (96, 160), (40, 72)):
        out = d(np.zeros((1, height, width, 4), "float32"))
        # PyTorch's floor((n + 2 - 4) / 2) + 1 per conv.
        h, w = height, width
        for _ in range(5):
            h, w = (h - 2) // 2 + 1, (w - 2) // 2 + 1
        assert out.shape == (1, h, w, 1)
    first = d.get_layer("conv1")
    bound = 1 / np.sqrt(16 * 4)  # PyTorch's default conv initialization: U(+-1/sqrt(fan_in))
    for weights in (first.kernel.numpy(), first.bias.numpy()):
        assert np.abs(weights).max() <= bound and np.abs(weights).max() > 0.9 * bound


def test_pseudo_labels_masking_and_confidence_weighting():
    # Teacher probabilities [1, 2, 2, 3]: one-hot, a max of 0.99, of 0.95 and uniform.
    threshold = 0.968
    probabilities = np.array(
        [[[[0.0, 0.0, 1.0], [0.005, 0.99, 0.005]], [[0.95, 0.03, 0.02], [1 / 3] * 3]]]
    )
    teacher_logits = np.log(np.maximum(probabilities, 1e-30)).astype("float32")
    labels, confidence, confident = self_training.pseudo_labels(teacher_logits, threshold)
    np.testing.assert_array_equal(labels.numpy(), [[[2, 1], [0, 0]]])
    np.testing.assert_allclose(confidence.numpy(), probabilities.max(-1), rtol=1e-5)
    np.testing.assert_array_equal(confident.numpy(), [[[1, 1], [0, 0]]])
    # A probability equal to the threshold counts (DAFormer's `ge`): the one-hot pixel's 1.0.
    np.testing.assert_array_equal(
        self_training.pseudo_labels(teacher_logits, 1.0)[2].numpy(), [[[1, 0], [0, 0]]]
    )

    rng = np.random.default_rng(1)
    student_logits = rng.normal(size=(1, 2, 2, 3)).astype("float32")
    # The step's sum (`SelfTrainingModel._target_loss`): the segmentation loss's, every
    # pseudo-label a valid class.
    loss_sum, valid = losses.segmentation_loss_sum(labels, student_logits, num_classes=3)
    loss_sum = loss_sum.numpy()
    assert valid.numpy() == 4
    log_p = np.log(_softmax(student_logits.astype(np.float64)))
    ce = -np.take_along_axis(log_p, labels.numpy()[..., None], -1)[..., 0]
    assert loss_sum == pytest.approx(ce.sum(), rel=RTOL)
    # The weighted loss of the step: q * mean CE over every target pixel (the unconfident ones
    # too), q = 2 / 4 here (`SelfTrainingModel._target_loss`: kept / pixels * loss_sum / pixels).
    kept = float(confident.numpy().sum())
    assert kept / 4 * loss_sum / 4 == pytest.approx(0.5 * ce.mean(), rel=RTOL)


def test_teacher_ema_factor_warms_up_to_alpha():
    steps = np.arange(1, 300)
    got = self_training.teacher_ema_factor(steps, 0.99).numpy()
    np.testing.assert_allclose(got, np.minimum(1 - 1 / (steps + 1), 0.99), rtol=1e-6)
    assert got[0] == 0.5  # the first applied step: halfway between the copy and the student
    assert got[-1] == np.float32(0.99)
