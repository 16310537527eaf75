"""Tests of the photometric augmentation: references, reproducibility, graph and tf.data use."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from uada.data import augment


def _random_image(shape=(12, 17, 3), seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


@pytest.mark.parametrize("kernel_size", [3, 5, 7])
def test_median_blur_matches_scipy(kernel_size):
    image = _random_image()
    result = augment.median_blur(tf.constant(image), kernel_size).numpy()
    # OpenCV's medianBlur (the original's) replicates the edge pixel: scipy's "nearest".
    expected = ndimage.median_filter(image, size=(kernel_size, kernel_size, 1), mode="nearest")
    np.testing.assert_array_equal(result, expected)


def _disc_mean(image, kernel_size):
    radius = kernel_size // 2
    padded = np.pad(image, [(radius, radius), (radius, radius), (0, 0)], mode="reflect")
    total, count = np.zeros_like(image), 0
    h, w, _ = image.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx <= radius * radius:
                total += padded[radius + dy : radius + dy + h, radius + dx : radius + dx + w]
                count += 1
    return total / count


@pytest.mark.parametrize("kernel_size", [3, 7])
def test_bilateral_blur_defaults_average_over_a_disc_like_the_original(kernel_size):
    image = _random_image()
    # With sigma_space = sigma_color / 255 = 35 all weights are within 1% of each other.
    result = augment.bilateral_blur(tf.constant(image), kernel_size).numpy()
    np.testing.assert_allclose(result, _disc_mean(image, kernel_size), atol=1.5)
    exact = augment.bilateral_blur(tf.constant(image), kernel_size, 1e9, 1e9).numpy()
    np.testing.assert_allclose(exact, _disc_mean(image, kernel_size), rtol=1e-5, atol=1e-3)


def test_bilateral_blur_with_small_sigma_color_keeps_edges():
    image = np.zeros((10, 10, 3), np.float32)
    image[:, 5:] = 200.0
    edge_aware = augment.bilateral_blur(tf.constant(image), 5, sigma_color=10.0).numpy()
    np.testing.assert_allclose(edge_aware, image, atol=1e-3)
    plain = augment.bilateral_blur(tf.constant(image), 5).numpy()
    assert plain[0, 4, 0] > 50.0  # the default blurs across the edge


def test_kernel_size_one_is_identity():
    image = tf.constant(_random_image())
    np.testing.assert_array_equal(augment.median_blur(image, 1), image)
    np.testing.assert_array_equal(augment.bilateral_blur(image, 1), image)


def test_distort_color_orders_differ_and_stay_in_range():
    image = tf.constant(_random_image())
    seed = tf.constant([1, 2])
    results = [augment.distort_color(image, seed, order).numpy() for order in range(4)]
    for result in results:
        assert result.min() >= 0.0 and result.max() <= 255.0
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(results[i] - results[j]).max() > 1.0


def test_augment_is_the_same_eagerly_in_a_function_and_in_tf_data():
    image = tf.constant(_random_image((24, 32, 3)))
    seeds = tf.constant([[7, i] for i in range(12)], dtype=tf.int64)
    eager = [augment.augment(image, seed).numpy() for seed in seeds]
    graph = tf.function(augment.augment)
    in_function = [graph(image, seed).numpy() for seed in seeds]
    dataset = tf.data.Dataset.from_tensor_slices(seeds).map(
        lambda seed: augment.augment(image, seed), num_parallel_calls=4
    )
    in_data = [element.numpy() for element in dataset]
    # Equal up to float rounding (graph optimizations may reorder arithmetic).
    for a, b, c in zip(eager, in_function, in_data, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-3)
    # Different seeds give different results, some of them leave the image unchanged.
    assert len({result.tobytes() for result in eager}) >= 8


def test_augment_output_dtype_shape_range():
    image = tf.constant(_random_image((16, 24, 3)).astype(np.uint8))
    for i in range(6):
        result = augment.augment(image, [0, i])
        assert result.dtype == tf.float32
        assert result.shape == (16, 24, 3)
        assert float(tf.reduce_min(result)) >= 0.0 and float(tf.reduce_max(result)) <= 255.0

    spec = tf.TensorSpec([16, 24, 3], tf.float32)
    graph = tf.function(augment.augment, input_signature=[spec, tf.TensorSpec([2], tf.int32)])
    assert graph.get_concrete_function().structured_outputs.shape == (16, 24, 3)


def test_color_distortion_probability_is_four_fifths():
    image = tf.constant(_random_image((4, 4, 3)))
    unchanged = sum(
        bool(np.array_equal(augment.random_color(image, tf.constant([3, i])).numpy(), image))
        for i in range(300)
    )
    # Binomial(300, 1/5): mean 60, standard deviation 6.9.
    assert 35 <= unchanged <= 85


def test_bad_arguments_raise_naming_them():
    image = tf.zeros([8, 8, 3])
    with pytest.raises(ValueError, match="kernel_size=4"):
        augment.median_blur(image, 4)
    with pytest.raises(ValueError, match="order=4"):
        augment.distort_color(image, tf.constant([0, 0]), 4)
    with pytest.raises(ValueError, match="seed"):
        augment.augment(image, [1, 2, 3])
    with pytest.raises(ValueError, match="sigma_color=0"):
        augment.bilateral_blur(image, 3, sigma_color=0)
