"""Tests of the procedural pretraining set `uada.data.pattern_images`."""

import numpy as np
import pytest

from uada.data import pattern_images


def test_an_example_is_fixed_by_seed_and_index():
    image, label = pattern_images.draw_example(seed=3, index=5)
    again, label_again = pattern_images.draw_example(seed=3, index=5)
    assert image.tobytes() == again.tobytes() and label == label_again
    other_index, _ = pattern_images.draw_example(seed=3, index=6)
    other_seed, _ = pattern_images.draw_example(seed=4, index=5)
    assert not np.array_equal(image, other_index)
    assert not np.array_equal(image, other_seed)


def test_images_are_uint8_rgb_of_the_requested_size():
    images, labels = pattern_images.draw_batch(seed=0, start=0, count=4, image_size=(32, 48))
    assert images.dtype == np.uint8 and images.shape == (4, 32, 48, 3)
    assert labels.dtype == np.int32 and labels.shape == (4,)
    image, label = pattern_images.draw_example(seed=0, index=0)
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    assert isinstance(label, int)


def test_labels_cover_every_class():
    _, labels = pattern_images.draw_batch(seed=0, start=0, count=300, image_size=(16, 16))
    counts = np.bincount(labels, minlength=pattern_images.NUM_CLASSES)
    assert len(counts) == pattern_images.NUM_CLASSES == len(pattern_images.CLASS_NAMES)
    assert counts.min() >= 10, counts  # uniform: 30 expected per class


def test_the_figure_stands_out_and_styles_vary():
    images, _ = pattern_images.draw_batch(seed=0, start=0, count=50, image_size=(32, 32))
    images = images.astype(np.float32)
    # Not flat: a figure on a background in every image.
    assert (images.std(axis=(1, 2, 3)) > 5).all()
    # Style diversity: the images' mean colours spread over much of the range.
    means = images.mean(axis=(1, 2))  # [N, 3]
    assert means.std(axis=0).min() > 20, means.std(axis=0)


def test_bad_image_size_is_named():
    with pytest.raises(ValueError, match=r"image_size=\(8, 64\)"):
        pattern_images.draw_example(0, 0, image_size=(8, 64))
