"""Tests of R's extension, the segmenter head S and the domain classifier D."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from uada.layers import DomainAgnosticNormalization
from uada.models import (
    build_backbone,
    build_domain_classifier,
    build_representation,
    build_segmentation_head,
)


@pytest.mark.parametrize("norm, has_bias", [("dan", False), ("none", True)])
def test_representation_extends_to_256_channels(norm, has_bias):
    backbone = build_backbone("resnet_tiny", norm, 8, input_shape=(64, 128, 3))
    representation = build_representation(backbone, norm)
    z = representation(np.zeros((2, 64, 128, 3), "float32"))
    assert tuple(z.shape) == (2, 8, 16, 256)
    assert np.all(keras.ops.convert_to_numpy(z) >= 0)  # ReLU
    assert representation.get_layer("extension_conv").use_bias is has_bias


def test_segmentation_head_layout_and_output_size():
    head = build_segmentation_head(19, (64, 128))
    logits = head(np.random.default_rng(0).normal(size=(2, 8, 16, 256)).astype("float32"))
    assert tuple(logits.shape) == (2, 64, 128, 19)
    norm = head.get_layer("head_norm")
    assert type(norm) is DomainAgnosticNormalization
    assert (norm.scale, norm.center, norm.epsilon) == (False, True, 1e-3)
    assert head.get_layer("head_conv").use_bias is False
    assert head.get_layer("head_conv").filters == 40
    upsample = head.get_layer("logits_upsample")
    assert (upsample.kernel_size, upsample.strides) == ((4, 4), (2, 2))


def test_domain_classifier_is_a_per_position_mlp():
    classifier = build_domain_classifier()
    widths = [(256, 200), (200, 100), (100, 50), (50, 1)]
    assert classifier.count_params() == sum(i * o + o for i, o in widths)
    z = np.random.default_rng(0).normal(size=(2, 4, 6, 256)).astype("float32")
    before = keras.ops.convert_to_numpy(classifier(z))
    z[1, 2, 3] += 1.0
    after = keras.ops.convert_to_numpy(classifier(z))
    changed = np.argwhere(np.abs(after - before) > 0)
    assert before.shape == (2, 4, 6, 1)
    np.testing.assert_array_equal(changed, [[1, 2, 3, 0]])  # only the changed position moves


def test_the_logits_x4_resize_is_1_5_output_pixels_off_the_originals():
    """Measures the offset of S's last resize (96x192 -> 384x768, x4) against the original's
    `tf.image.resize_images` of TF1 (corner-aligned grids, no half-pixel centres), on a ramp
    f(column) = column: docs/FIDELITY.md, item 6, states the number measured here."""
    head = build_segmentation_head(19, (384, 768))
    resize = head.get_layer("logits_resize")
    ramp = np.broadcast_to(np.arange(192, dtype="float32")[None, None, :, None], (1, 96, 192, 1))
    ours = keras.ops.convert_to_numpy(resize(ramp))[0, 0, :, 0]
    original = tf.raw_ops.ResizeBilinear(
        images=ramp, size=[384, 768], align_corners=False, half_pixel_centers=False
    ).numpy()[0, 0, :, 0]
    # Interior columns (away from both borders' clamping): our map at column j + s equals the
    # original's at j; the ramp's slope is 1/4 input pixel per output pixel.
    interior = slice(8, 760)
    shift = (original[interior] - ours[interior]) * 4.0
    np.testing.assert_allclose(shift, 1.5, atol=1e-4)  # float32 values < 192: error < 1e-5
