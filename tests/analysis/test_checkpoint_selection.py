"""Label-free selection signals (`uada.analysis.checkpoint_selection`) against hand-computed
values."""

import math

import numpy as np
import pytest
import scipy.stats

from uada.analysis import checkpoint_selection


def test_prediction_entropy_by_hand():
    logits = np.array([[0.0, 0.0], [0.0, math.log(3.0)], [0.0, 100.0]])
    # p = (1/2, 1/2): ln 2; p = (1/4, 3/4): -(1/4 ln 1/4 + 3/4 ln 3/4); a certain pixel: 0.
    expected = [math.log(2), -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), 0.0]
    np.testing.assert_allclose(checkpoint_selection.prediction_entropy(logits), expected, atol=1e-6)
    uniform = np.zeros((2, 3, 4, 19))
    np.testing.assert_allclose(
        checkpoint_selection.prediction_entropy(uniform), math.log(19), rtol=1e-6
    )


def test_domain_accuracy_is_balanced():
    # Source: 2 of 4 positions called source (logit <= 0); target: 1 of 2 called target.
    source = np.array([-1.0, 0.0, 2.0, 3.0])
    target = np.array([[0.5, -0.5]])
    assert checkpoint_selection.balanced_domain_accuracy(source, target) == pytest.approx(
        (2 / 4 + 1 / 2) / 2
    )
    # Calling every position "target" is chance, whatever the counts.
    assert checkpoint_selection.balanced_domain_accuracy(np.ones(10), np.ones(3)) == 0.5
    with pytest.raises(ValueError, match="both hold positions"):
        checkpoint_selection.balanced_domain_accuracy([], [1.0])


def test_retrieval_alignment_by_hand_and_limits():
    # tests/analysis/test_retrieval_curve.py's hand-computed curve [2/3, 1] over the line [1/2, 1].
    source, target = np.array([[0.0], [10.0]]), np.array([[1.0], [11.0], [5.0]])
    value = checkpoint_selection.retrieval_alignment(source, target, max_k=2)
    assert value == pytest.approx((2 / 3 + 1) / (1 / 2 + 1))
    rng = np.random.default_rng(0)
    apart = checkpoint_selection.retrieval_alignment(
        rng.normal(size=(60, 4)), rng.normal(size=(60, 4)) + 50
    )
    assert apart == 0.0


def _rows(steps, mious, **signals):
    rows = []
    for i, step in enumerate(steps):
        for domain, miou in (("src", 0.5), ("tgt", mious[i])):
            row = {"step": step, "domain": domain, "miou": miou, "miou_19": miou}
            row.update({name: values[i] for name, values in signals.items()})
            rows.append(row)
    for name in checkpoint_selection.SIGNALS:
        for row in rows:
            row.setdefault(name, None)
    return rows


def test_select_checkpoint_directions_and_reasons():
    rows = _rows(
        [100, 200, 300, 400],
        [0.30, 0.40, 0.35, 0.32],
        domain_accuracy=[0.9, 0.45, 0.58, 0.55],
        target_entropy=[1.2, 0.412, 0.5, 0.6],
        retrieval_alignment=[0.2, 0.8, 0.8, 0.5],
    )
    assert checkpoint_selection.select_checkpoint(rows, "last")[0] == 400
    step, reason = checkpoint_selection.select_checkpoint(rows, "target_entropy")
    assert step == 200
    assert reason == "selected by target_entropy (lowest, 0.412 nats) among 4 checkpoints"
    assert (
        checkpoint_selection.select_checkpoint(rows, "domain_accuracy")[0] == 200
    )  # |0.45 - 0.5| least
    assert (
        checkpoint_selection.select_checkpoint(rows, "retrieval_alignment")[0] == 300
    )  # tie: later
    no_d = _rows([1, 2], [0.1, 0.2], target_entropy=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"--select=domain_accuracy .* mode 'uada'"):
        checkpoint_selection.select_checkpoint(no_d, "domain_accuracy")
    with pytest.raises(ValueError, match="select='best'"):
        checkpoint_selection.select_checkpoint(rows, "best")


def test_curve_round_trip_and_report(tmp_path):
    rows = _rows(
        [100, 200, 300, 400],
        [0.30, 0.40, 0.35, 0.32],
        target_entropy=[1.2, 0.4, 0.5, 0.6],
        retrieval_alignment=[0.1, 0.2, 0.3, 0.4],
    )
    path = tmp_path / "eval_curve.csv"
    checkpoint_selection.write_curve(path, rows)
    back = checkpoint_selection.read_curve(path)
    assert back[1] == {**rows[1], "domain_accuracy": None}
    assert path.read_text().splitlines()[0] == ",".join(checkpoint_selection.CURVE_COLUMNS)

    report = checkpoint_selection.selection_report({"run": back}, {"run": "tgt"})
    rho = scipy.stats.spearmanr([-1.2, -0.4, -0.5, -0.6], [0.30, 0.40, 0.35, 0.32]).statistic
    assert rho == pytest.approx(1.0)
    # Entropy picks step 200 (40.0) against the last's 32.0; alignment picks the last itself.
    assert "| run | target_entropy | 4 | +1.00 |" in report
    assert "| 32.0 (400) | 40.0 (200) | +8.0 |" in report
    # Ranks [1, 2, 3, 4] against [1, 4, 3, 2]: 1 - 6 * 8 / (4 * 15) = 0.2.
    assert "| run | retrieval_alignment | 4 | +0.20 |" in report
    assert "| run | domain_accuracy | 0 | - |" in report
    assert "| mean of 1 run(s) | target_entropy | | | | | | +8.0 (beats last in 1) |" in report
