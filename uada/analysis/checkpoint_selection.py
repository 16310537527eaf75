"""Label-free checkpoint selection: signals computed without target labels, and how they rank.

Adversarial training swings from checkpoint to checkpoint, and the target's labels, which would
pick the best one, are exactly what unsupervised adaptation may not use. These signals use the
target's *images* only (and the labelled source):

- `domain_accuracy`: the balanced accuracy `(acc_source + acc_target) / 2`
  (`balanced_domain_accuracy`) of D's per-position prediction (logit > 0: target) on held-out
  source and target images, in inference mode.
  Better: closest to chance, the smallest `abs(acc - 0.5)`.
- `target_entropy`: the mean over target pixels of `-sum_c p_c ln p_c` (natural log: nats), `p`
  the softmax of the logits in inference mode. Better: lowest.
- `retrieval_alignment`: the area under the retrieval curve (the paper's Figure 4: the mean
  number of source vectors among the `k` nearest neighbours of a target vector, `k = 1..49`)
  over the area under the perfect line `k / 2`: 1 is perfect mixing, 0 full separation.
  Better: highest.

`domain_accuracy` is balanced so that a classifier that answers one domain for every position
scores exactly 0.5 whatever the two domains' numbers of positions; with equal numbers it is the
plain accuracy. It exists only for runs with a domain classifier (mode `"uada"`).

Selection by a signal picks the checkpoint with the best value (ties: the later step); `"last"`
picks the latest checkpoint. The reported mIoU is then read at the selected checkpoint.
`selection_report` measures how well each signal ranks checkpoints (Spearman's rank correlation of
the signal's *score*, oriented so that higher is better, with the target mIoU) and whether
selecting by it beats the last checkpoint; `workdirs_report` does so for the curves of run
directories (`python -m uada.selection`).

Example:

```python
rows = read_curve("workdirs/demo/eval_curve.csv")
step, reason = select_checkpoint(rows, "target_entropy")
print(selection_report({"demo": rows}, {"demo": "demo_target"}))
```
"""

import csv
import math
import os

import numpy as np
import tensorflow as tf

from uada.analysis import retrieval_curve
from uada.runs import workdir as workdir_lib

SIGNALS = ("domain_accuracy", "target_entropy", "retrieval_alignment")
SELECTIONS = ("last", *SIGNALS)
# `damaged`: why a checkpoint cannot be read (its one row has no numbers); empty for the others.
CURVE_COLUMNS = ("step", "domain", "miou", "miou_19", *SIGNALS, "damaged")

# How each signal is read: (score of a value, higher is better; the words for the best value).
_ORIENTATION = {
    "domain_accuracy": (lambda value: -abs(value - 0.5), "closest to 0.5"),
    "target_entropy": (lambda value: -value, "lowest"),
    "retrieval_alignment": (lambda value: value, "highest"),
}
_UNITS = {"target_entropy": " nats"}


# ------------------------------------------------------------------------------------------------
# The signals


def prediction_entropy(logits):
    """Per-pixel entropy `-sum_c p_c ln p_c` (nats) of `p = softmax(logits)` over the last axis.

    Args:
        logits: float array `[..., num_classes]`.

    Returns:
        float32 array `logits.shape[:-1]`.
    """
    log_p = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    return -tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1).numpy()


def balanced_domain_accuracy(source_logits, target_logits):
    """Balanced accuracy of domain logits (logit > 0 means target) on source and target positions.

    Args:
        source_logits: D's logits at source positions (any shape); the truth is source (0).
        target_logits: D's logits at target positions (any shape); the truth is target (1).

    Returns:
        `(accuracy on the source + accuracy on the target) / 2`, a float.
    """
    source = np.asarray(source_logits).ravel()
    target = np.asarray(target_logits).ravel()
    if not source.size or not target.size:
        raise ValueError(
            "`source_logits` and `target_logits` must both hold positions. Received: "
            f"{source.size} and {target.size}"
        )
    return float((np.mean(source <= 0) + np.mean(target > 0)) / 2)


def retrieval_alignment(source_vectors, target_vectors, max_k=49):
    """Area under the retrieval curve over the area under the perfect line `k / 2`.

    The curve is `uada.analysis.retrieval_curve.retrieval_curve` (`k = 1..max_k`); the areas are
    sums over `k`. Give equally many source and target vectors: perfect mixing is then about
    `k / 2`.

    Args:
        source_vectors: float array `[n, d]`.
        target_vectors: float array `[n, d]`.
        max_k: the largest `k`.

    Returns:
        `sum_k curve[k] / sum_k (k / 2)`, a float (0: no target vector has a source neighbour).
    """
    curve = retrieval_curve.retrieval_curve(source_vectors, target_vectors, max_k=max_k)
    return float(np.sum(curve) / np.sum(np.arange(1, max_k + 1) / 2))


# ------------------------------------------------------------------------------------------------
# Curves and selection


def write_curve(path, rows):
    """Writes curve rows (dicts with `CURVE_COLUMNS`) as CSV; `None` and NaN become empty."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CURVE_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({name: _cell(row.get(name)) for name in CURVE_COLUMNS})


def _cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6f}" if isinstance(value, float) else value


def read_curve(path):
    """Reads `write_curve`'s CSV: a list of dicts, `step` an int, empty cells `None`; the rows of
    damaged checkpoints (no numbers) are left out."""
    with open(path, newline="") as f:
        rows = [row for row in csv.DictReader(f) if not row.get("damaged")]
    missing = [name for name in CURVE_COLUMNS[:-1] if rows and name not in rows[0]]
    if missing:
        raise ValueError(f"{path} is not an evaluation curve: no column(s) {missing}.")
    for row in rows:
        row.pop("damaged", None)
        row["step"] = int(row["step"])
        for name in ("miou", "miou_19", *SIGNALS):
            row[name] = float(row[name]) if row[name] else None
    return rows


def _per_checkpoint(rows, name, domain=None):
    """`{step: value}` of column `name` (of `domain`'s rows if given), steps ascending."""
    values = {}
    for row in rows:
        if domain is None or row["domain"] == domain:
            values[row["step"]] = row[name]
    return dict(sorted(values.items()))


def select_checkpoint(rows, select):
    """Picks a checkpoint of a curve without any target label.

    Args:
        rows: curve rows (`read_curve`), per checkpoint the same signal values on each row.
        select: `"last"` or a signal name (`SELECTIONS`).

    Returns:
        `(step, reason)`: the selected step and a sentence saying why, e.g. "selected by
        target_entropy (lowest, 0.412 nats) among 8 checkpoints".

    Raises:
        ValueError: `select` is unknown, or the signal is missing (e.g. `domain_accuracy` of a
            run without a domain classifier).
    """
    if select not in SELECTIONS:
        raise ValueError(f"`select` must be one of {SELECTIONS}. Received: select={select!r}")
    steps = sorted({row["step"] for row in rows})
    if not steps:
        raise ValueError("The evaluation curve has no checkpoint to select from.")
    among = f"among {len(steps)} checkpoint{'s' if len(steps) > 1 else ''}"
    if select == "last":
        return steps[-1], f"the last checkpoint (--select=last) {among}"
    values = _per_checkpoint(rows, select)
    if any(value is None for value in values.values()):
        raise ValueError(
            f"--select={select} needs the signal {select} at every checkpoint, and this run has "
            f"none at step(s) {[s for s, v in values.items() if v is None]}"
            + (" (only runs with a domain classifier, mode 'uada', have it)"
               if select == "domain_accuracy" else "")
            + f". Received: select={select!r}"
        )  # fmt: skip
    score, best_words = _ORIENTATION[select]
    # Ties go to the later step: max over (score, step).
    step = max(values, key=lambda s: (score(values[s]), s))
    return step, (
        f"selected by {select} ({best_words}, {values[step]:.3f}{_UNITS.get(select, '')}) {among}"
    )


def selection_report(curves, targets):
    """How well each signal picks checkpoints, over several runs' curves (Markdown).

    For each run and signal: Spearman's rank correlation, over the run's checkpoints, of the
    signal's score (oriented: higher is better, i.e. `-abs(domain_accuracy - 0.5)`,
    `-target_entropy`, `retrieval_alignment`) with the target mIoU (positive: the signal ranks
    checkpoints as the target labels would); the target mIoU at the last checkpoint and at the
    checkpoint the signal selects, and their difference. A last line per signal averages the
    difference over the runs.

    Args:
        curves: `{run name: curve rows}` (`read_curve`).
        targets: `{run name: target domain name}`.

    Returns:
        The report as Markdown text (mIoU in %).
    """
    import scipy.stats  # here: its import would add 0.4 s to every command's start-up

    lines = [
        "| run | signal | checkpoints | Spearman rho (score vs target mIoU) | p | "
        "target mIoU last (step) | target mIoU selected (step) | selected - last |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    gains = {signal: [] for signal in SIGNALS}
    for run, rows in curves.items():
        miou = _per_checkpoint(rows, "miou", targets[run])
        last = max(miou)
        for signal in SIGNALS:
            values = _per_checkpoint(rows, signal)
            steps = [s for s in miou if values.get(s) is not None and miou[s] is not None]
            if not steps:
                lines.append(f"| {run} | {signal} | 0 | - | - | - | - | - |")
                continue
            rho, p = (math.nan, math.nan)
            if len(steps) > 2:
                score = _ORIENTATION[signal][0]
                result = scipy.stats.spearmanr(
                    [score(values[s]) for s in steps], [miou[s] for s in steps]
                )
                rho, p = float(result.statistic), float(result.pvalue)
            selected, _ = select_checkpoint([r for r in rows if r["step"] in steps], signal)
            gain = 100 * (miou[selected] - miou[last])
            gains[signal].append(gain)
            lines.append(
                f"| {run} | {signal} | {len(steps)} | {_number(rho, '+.2f')} | {_number(p, '.2f')}"
                f" | {100 * miou[last]:.1f} ({last}) | {100 * miou[selected]:.1f} ({selected}) "
                f"| {gain:+.1f} |"
            )
    for signal, values in gains.items():
        if values:
            beats = sum(g > 0 for g in values)
            lines.append(
                f"| mean of {len(values)} run(s) | {signal} | | | | | | {np.mean(values):+.1f} "
                f"(beats last in {beats}) |"
            )
    return "\n".join(lines) + "\n"


def _number(value, spec):
    return "-" if math.isnan(value) else format(value, spec)


def workdirs_report(workdirs, *, names=None, curve="eval_curve.csv"):
    """The selection report (Markdown) of the curves `WORKDIR/<curve>` of `workdirs`.

    Raises:
        FileNotFoundError: a workdir has no such curve; the message gives the command to write it.
        ValueError: `names` does not give one distinct name per workdir.
    """
    workdirs = list(workdirs)
    names = list(names) if names else [os.path.basename(os.path.normpath(w)) for w in workdirs]
    if len(names) != len(workdirs) or len(set(names)) != len(names):
        raise ValueError(
            f"`names` must give one distinct name per workdir ({len(workdirs)}). "
            f"Received: names={names}"
        )
    curves, targets = {}, {}
    for name, workdir in zip(names, workdirs, strict=True):
        path = os.path.join(workdir, curve)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} not found: write it with `python -m uada.evaluate --workdir={workdir} "
                f"--checkpoints=all` (the run needs several checkpoints: --keep_checkpoints=0). "
                f"Received: curve={curve!r}"
            )
        curves[name] = read_curve(path)
        targets[name] = workdir_lib.load_config(workdir).target
    return selection_report(curves, targets)
