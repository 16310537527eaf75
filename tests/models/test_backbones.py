"""Tests of `uada.models.build_backbone`: dilation, norm swap, weight copy, preprocessing."""

import keras
import numpy as np
import pytest
from conftest import FORWARD_DEPTH, float32_error_bound, relative_error

from uada.layers import DomainAgnosticNormalization, SplitBatchNormalization
from uada.models import ImagePreprocessing, build_backbone
from uada.models.backbones import PREPROCESSING, build_base_model

NORM_CLASSES = {
    "none": keras.layers.Identity,
    "batch": keras.layers.BatchNormalization,
    "instance": keras.layers.GroupNormalization,
    "split_batch": SplitBatchNormalization,
    "dan": DomainAgnosticNormalization,
}
# Parameter counts of the ResNet-50 OS8 backbone (Keras' ResNet-50 without top: 23,587,712, of
# which 26,560 are the biases of its 53 convolutions; every one of them feeds a normalization, so
# only `none` keeps them).
RESNET50_PARAMS = {
    "none": 23_481_472,
    "batch": 23_561_152,
    "instance": 23_508_032,
    "split_batch": 23_561_152,
    "dan": 23_561_152,
}


@pytest.mark.parametrize("output_stride, size", [(8, (8, 16)), (16, (4, 8)), (32, (2, 4))])
def test_output_stride_sets_feature_size(output_stride, size):
    backbone = build_backbone("resnet_tiny", "dan", output_stride, input_shape=(64, 128, 3))
    features = backbone(np.zeros((1, 64, 128, 3), "float32"))
    assert tuple(features.shape) == (1, *size, 256)


def test_output_stride_8_dilates_conv4_and_conv5():
    backbone = build_backbone("resnet_tiny", "dan", 8)
    for name, strides, dilation in [
        ("conv3_block1_1_conv", (2, 2), (1, 1)),
        ("conv4_block1_0_conv", (1, 1), (1, 1)),
        ("conv4_block1_1_conv", (1, 1), (1, 1)),
        ("conv4_block1_2_conv", (1, 1), (2, 2)),
        ("conv5_block1_0_conv", (1, 1), (1, 1)),
        ("conv5_block1_2_conv", (1, 1), (4, 4)),
    ]:
        layer = backbone.get_layer(name)
        assert (tuple(layer.strides), tuple(layer.dilation_rate)) == (strides, dilation), name


@pytest.mark.parametrize("norm", sorted(NORM_CLASSES))
def test_every_batch_norm_is_replaced(norm):
    backbone = build_backbone("resnet_tiny", norm, 8)
    norms = [layer for layer in backbone.layers if layer.name.endswith("_bn")]
    assert len(norms) == 1 + 4 * 4  # stem + four convs per bottleneck block
    for layer in norms:
        assert type(layer) is NORM_CLASSES[norm], layer.name
        if norm in ("batch", "split_batch", "dan"):
            assert (layer.momentum, layer.epsilon) == (0.96, 1e-5)


def test_preprocessing_matches_keras_resnet50_preprocess_input():
    backbone = build_backbone("resnet_tiny", "dan", 8)
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    got = backbone.get_layer("preprocessing")(images)
    expected = keras.applications.resnet50.preprocess_input(images.copy())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "resnet18"}, "name='resnet18'"),
        ({"output_stride": 4}, "output_stride=4"),
        ({"norm": "bn"}, "norm='bn'"),
        ({"name": "resnet_tiny", "weights": "imagenet"}, "'resnet_tiny'.*weights='imagenet'"),
        ({"weights": "weights.npz"}, "weights='weights.npz'"),
        ({"name": "resnet_tiny", "weights": "tiny.weights"}, "weights='tiny.weights'"),
    ],
)
def test_invalid_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_backbone(**kwargs)


@pytest.mark.parametrize("name", ["resnet50", "resnet_tiny"])
def test_missing_weights_file_is_named(name, tmp_path):
    path = str(tmp_path / "missing.weights.h5")
    with pytest.raises(FileNotFoundError, match="missing.weights.h5"):
        build_backbone(name, weights=path)


def _assert_no_bias_before_a_normalization(backbone, norm, num_convs):
    convs = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == num_convs
    for conv in convs:
        # Every convolution of a ResNet v1 feeds a normalization position ("<prefix>_bn").
        assert backbone.get_layer(conv.name[: -len("conv")] + "bn") is not None
        assert conv.use_bias == (norm == "none"), conv.name


@pytest.mark.parametrize("norm", sorted(NORM_CLASSES))
def test_convolutions_before_a_normalization_have_no_bias(norm):
    # ResNet-50's convolutions: in the weights-file test below, which builds it for every norm.
    _assert_no_bias_before_a_normalization(build_backbone("resnet_tiny", norm, 8), norm, 17)


@pytest.fixture(scope="module")
def resnet50_weights(tmp_path_factory):
    """A Keras ResNet-50 (no top) with random kernels, conv biases and BN statistics, saved.

    BN parameters and statistics and the conv biases are randomized too: a fresh ResNet-50's
    are 1/0/0/1 and 0, the same as a new layer's, so an uncopied or unfolded value would go
    unnoticed.
    """
    keras.utils.set_random_seed(1)
    reference = _randomized(keras.applications.ResNet50(weights=None, include_top=False), 1)
    path = tmp_path_factory.mktemp("weights") / "r50.weights.h5"
    reference.save_weights(path)
    return str(path), {layer.name: layer.get_weights() for layer in reference.layers}


@pytest.mark.parametrize("norm", sorted(NORM_CLASSES))
def test_resnet50_weights_file_is_copied_for_every_norm(norm, resnet50_weights):
    path, reference = resnet50_weights
    backbone = build_backbone("resnet50", norm, 8, weights=path, input_shape=(384, 768, 3))
    assert backbone.output_shape == (None, 48, 96, 2048)
    assert backbone.count_params() == RESNET50_PARAMS[norm]
    _assert_no_bias_before_a_normalization(backbone, norm, 53)
    copied = 0
    for name, weights in reference.items():
        if not weights:
            continue
        layer = backbone.get_layer(name)
        if name.endswith("_conv"):
            # The kernel; with `none` also a bias, zero (the original's), not the file's.
            expected = [weights[0], 0 * weights[1]] if norm == "none" else weights[:1]
        else:  # a BN position: [gamma, beta, moving_mean, moving_variance]
            expected = {"none": [], "instance": weights[:2]}.get(norm, list(weights))
            if len(expected) == 4:  # the preceding conv's bias folded into the moving mean
                bias = reference[name[: -len("bn")] + "conv"][1]
                expected[2] = weights[2] - bias
        got = layer.get_weights()
        assert len(got) == len(expected), name
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g, e, err_msg=name)
            copied += 1
    assert copied > 0


@pytest.mark.parametrize("norm", ["batch", "split_batch", "dan"])
def test_folded_biases_give_keras_resnet50_features(norm, resnet50_weights):
    """With the biases dropped and folded, inference equals Keras' ResNet-50 with its biases."""
    path, _ = resnet50_weights
    keras.utils.set_random_seed(2)
    reference = keras.applications.ResNet50(
        weights=path, include_top=False, input_shape=(64, 64, 3)
    )
    backbone = build_backbone("resnet50", norm, 32, weights=path, input_shape=(64, 64, 3))
    images = np.random.default_rng(2).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    expected = reference(keras.applications.resnet50.preprocess_input(images.copy()))
    got = keras.ops.convert_to_numpy(backbone(images, training=False))
    expected = keras.ops.convert_to_numpy(expected)
    assert np.abs(expected).max() > 0
    # Folding changes the rounding, not the maths: float32's bound over ResNet-50's ~53 layers
    # (conv and normalization, two reductions each), the largest a 3x3 conv over 512 channels.
    # An unfolded or uncopied value (random in `resnet50_weights`) is off by tens of percent.
    error = relative_error(got, expected)
    assert error <= float32_error_bound(num_terms=9 * 512, depth=2 * 53), error


def _randomized(model, seed):
    """`model` with random BN parameters and statistics and random conv biases (see
    `resnet50_weights`: the defaults would hide an uncopied or unfolded value)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32")
                               for w in layer.get_weights()])  # fmt: skip
        elif isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.uniform(-0.5, 0.5, bias.shape).astype("float32")])
    return model


@pytest.fixture(scope="module")
def resnet_tiny_weights(tmp_path_factory):
    """A plain `resnet_tiny` base with random kernels, conv biases and BN statistics, saved."""
    keras.utils.set_random_seed(3)
    reference = _randomized(build_base_model("resnet_tiny"), seed=3)
    path = tmp_path_factory.mktemp("weights") / "tiny.weights.h5"
    reference.save_weights(path)
    return str(path), reference


@pytest.mark.parametrize("norm", ["batch", "dan"])
def test_resnet_tiny_weights_file_gives_the_base_models_features(norm, resnet_tiny_weights):
    """Loaded, its biases dropped and folded, resnet_tiny at inference equals the saved base
    model behind its preprocessing."""
    path, reference = resnet_tiny_weights
    backbone = build_backbone("resnet_tiny", norm, 32, weights=path, input_shape=(64, 64, 3))
    images = np.random.default_rng(4).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    expected = reference(ImagePreprocessing(PREPROCESSING)(images), training=False)
    got = keras.ops.convert_to_numpy(backbone(images, training=False))
    expected = keras.ops.convert_to_numpy(expected)
    assert np.abs(expected).max() > 0
    # Folding changes the rounding, not the maths (see the ResNet-50 test); resnet_tiny's largest
    # reduction is a 3x3 conv over 64 channels.
    error = relative_error(got, expected)
    assert error <= float32_error_bound(num_terms=9 * 64, depth=FORWARD_DEPTH), error
    # The weights came from the file, not from a fresh network: the kernels are the reference's.
    np.testing.assert_array_equal(
        backbone.get_layer("conv3_block1_2_conv").kernel.numpy(),
        reference.get_layer("conv3_block1_2_conv").kernel.numpy(),
    )


def test_norm_none_starts_the_convolution_biases_at_zero(resnet_tiny_weights):
    """Without a normalization the biases start at zero, as the original's slim convolutions
    without a normalizer do, and not at the file's values (learned in front of a batch norm);
    the kernels still come from the file."""
    path, reference = resnet_tiny_weights
    backbone = build_backbone("resnet_tiny", "none", 32, weights=path, input_shape=(64, 64, 3))
    convs = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 17
    for conv in convs:
        kernel, bias = reference.get_layer(conv.name).get_weights()
        assert np.abs(bias).max() > 0.1  # the file's biases are not zero
        np.testing.assert_array_equal(conv.kernel.numpy(), kernel, err_msg=conv.name)
        np.testing.assert_array_equal(conv.bias.numpy(), np.zeros_like(bias), err_msg=conv.name)


def test_resnet50_weights_file_into_resnet_tiny_is_named(resnet50_weights):
    path, _ = resnet50_weights
    with pytest.raises(ValueError, match=r"r50\.weights\.h5.*'resnet_tiny'"):
        build_backbone("resnet_tiny", "dan", 8, weights=path)


def test_resnet_tiny_weights_file_into_resnet50_is_named(resnet_tiny_weights):
    path, _ = resnet_tiny_weights
    with pytest.raises(ValueError, match=r"tiny\.weights\.h5.*'resnet50'"):
        build_backbone("resnet50", "dan", 8, weights=path)
