"""Retrieval curve (Figure 4) against hand-computed values and a brute-force reference."""

import numpy as np
import pytest
from PIL import Image

from uada.analysis import figures, retrieval_curve
from uada.data.labels import PALETTE, colorize


def test_hand_computed_curve():
    # 1-D points. Target 1 -> nearest s(0), t(5); target 11 -> s(10), t(5); target 5 -> t(1),
    # then s(0) and s(10) tied.
    source = np.array([[0.0], [10.0]])
    target = np.array([[1.0], [11.0], [5.0]])
    curve = retrieval_curve.retrieval_curve(source, target, max_k=2)
    np.testing.assert_allclose(curve, [2 / 3, 1.0])


def _brute_force(source, target, max_k):
    pool = np.concatenate([source, target])
    is_source = np.arange(len(pool)) < len(source)
    counts = np.zeros(max_k)
    for i, query in enumerate(target):
        dist = np.linalg.norm(pool - query, axis=1)
        dist[len(source) + i] = np.inf
        order = np.argsort(dist, kind="stable")[:max_k]
        counts += np.cumsum(is_source[order])
    return counts / len(target)


@pytest.mark.parametrize("shift", [0.0, 1.0, 50.0])
def test_matches_brute_force_and_limits(shift):
    rng = np.random.default_rng(0)
    source = rng.normal(size=(150, 8))
    target = rng.normal(size=(120, 8)) + shift
    curve = retrieval_curve.retrieval_curve(source, target, max_k=20, chunk_size=37)
    np.testing.assert_allclose(curve, _brute_force(source, target, 20), atol=1e-12)
    k = np.arange(1, 21)
    if shift == 0.0:  # same distribution: close to the share of source vectors in the pool
        np.testing.assert_allclose(curve, k * 150 / 269, rtol=0.25)
    if shift == 50.0:  # separated domains: no source neighbour at all
        np.testing.assert_array_equal(curve, 0.0)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="same width"):
        retrieval_curve.retrieval_curve(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"max_k=10"):
        retrieval_curve.retrieval_curve(np.zeros((3, 2)), np.zeros((3, 2)), max_k=10)


def test_domain_accuracy_per_class():
    table = retrieval_curve.domain_accuracy_per_class(
        source_p_target=np.array([0.1, 0.9, 0.2]),
        source_classes=np.array([0, 0, 13]),
        target_p_target=np.array([0.8, 0.4]),
        target_classes=np.array([13, 255]),
    )
    assert table["road"] == 0.5  # one of two source road positions called source
    assert table["car"] == 1.0  # source car -> source, target car -> target
    assert table["sky"] is None
    assert table["all"] == pytest.approx(3 / 4)  # the ignored position is left out


def test_plot_and_prediction_grid_write_files(tmp_path):
    paths = figures.plot_retrieval_curves(
        {"a": np.linspace(0, 10, 49), "b": np.linspace(0, 20, 49)}, str(tmp_path / "curve")
    )
    assert [p[-3:] for p in paths] == ["png", "pdf"]
    assert Image.open(paths[0]).size[0] > 300
    labels = np.zeros((2, 16, 32), np.int64)
    labels[:, 8:] = 13
    images = np.full((2, 16, 32, 3), 128, np.uint8)
    out = figures.prediction_grid(
        images, labels, {"source only": labels * 0, "adapted": labels}, tmp_path / "grid.png"
    )
    assert Image.open(out).mode in ("RGB", "RGBA")
    with pytest.raises(ValueError, match=r"predictions\['x'\]"):
        figures.prediction_grid(images, labels, {"x": labels[:, :4]}, tmp_path / "bad.png")


def test_colorize_uses_the_palette():
    label_map = np.array([[0, 13], [255, 18]])
    colors = colorize(label_map)
    np.testing.assert_array_equal(colors[0, 0], PALETTE[0])
    np.testing.assert_array_equal(colors[0, 1], (0, 0, 142))
    np.testing.assert_array_equal(colors[1, 0], (0, 0, 0))
    np.testing.assert_array_equal(colors[1, 1], (119, 11, 32))
