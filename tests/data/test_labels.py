"""`uada.data.labels.overlay` against hand-computed values."""

import numpy as np
import pytest

from uada.data import labels


def test_overlay_blends_the_palette_colour_with_the_image():
    image = np.array([[[10, 20, 30], [200, 100, 0], [7, 8, 9]]], np.uint8)
    label_map = np.array([[0, 13, 255]])  # road (128, 64, 128), car (0, 0, 142), ignored
    # 0.5 * (128, 64, 128) + 0.5 * (10, 20, 30) = (69, 42, 79); 0.5 * (0, 0, 142) + 0.5 *
    # (200, 100, 0) = (100, 50, 71); an ignored pixel keeps the image.
    np.testing.assert_array_equal(
        labels.overlay(image, label_map), [[[69, 42, 79], [100, 50, 71], [7, 8, 9]]]
    )
    # alpha 0.25: 0.25 * 128 + 0.75 * 10 = 39.5 -> 40 (round half to even), 0.25 * 64 + 15 = 31,
    # 0.25 * 128 + 22.5 = 54.5 -> 54.
    assert labels.overlay(image, label_map, alpha=0.25)[0, 0].tolist() == [40, 31, 54]
    np.testing.assert_array_equal(labels.overlay(image, label_map, alpha=0)[0, :2], image[0, :2])
    np.testing.assert_array_equal(
        labels.overlay(image, label_map, alpha=1)[0, :2], labels.PALETTE[[0, 13]]
    )


def test_overlay_checks_its_arguments():
    with pytest.raises(ValueError, match=r"label_map.shape=\(2, 3\)"):
        labels.overlay(np.zeros((2, 4, 3)), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match=r"alpha=1.5"):
        labels.overlay(np.zeros((2, 3, 3)), np.zeros((2, 3), int), alpha=1.5)
