"""Every figure of uada (matplotlib, written to files):

- `prediction_grid`: the paper's Figure 5, image / ground truth / one column per model;
- `plot_eval_curve`: the mIoU of every checkpoint against the step (`uada.analysis.eval_curve`);
- `plot_retrieval_curves`: the paper's Figure 4 (`uada.analysis.retrieval_curve`);
- `plot_adversarial_diagnostics`: the adversarial game of UADA runs over training, from their
  TensorBoard scalars.
"""

import csv
import os

import numpy as np

from uada.data.labels import CITYSCAPES, colorize
from uada.runs import workdir as workdir_lib

# The scalars `plot_adversarial_diagnostics` draws by default, one panel each (`UADAModel`,
# *Metrics*). The other methods' diagnostics are their models' `method_metric_names`
# (`uada.methods`), e.g. `discriminator_accuracy` or `pseudo_label_kept_fraction`.
ADVERSARIAL_DIAGNOSTICS = (
    "domain_accuracy",
    "confusion_clipped_fraction",
    "confusion_gradient_ratio",
)


def prediction_grid(images, labels, predictions, path, *, title=None, classes=CITYSCAPES):
    """Draws one row per image: the image, its ground truth, and each model's prediction.

    Args:
        images: uint8 or float `[N, H, W, 3]` RGB in [0, 255].
        labels: integer `[N, H, W]` class indices (255 = ignored, drawn black).
        predictions: dict `{column title: integer [N, H, W] class indices}`, in column order,
            e.g. `{"source only": ..., "UADA + DAN": ...}`; `{}` draws images and labels only.
        path: output image path (the format follows the extension, e.g. `.png` or `.pdf`).
        title: optional figure title.
        classes: the `uada.data.labels.Classes` whose colours and names draw the labels (the
            run's: `uada.data.domains.run_classes`). Defaults to the 19 Cityscapes classes.

    Returns:
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 4 or labels.shape != images.shape[:3]:
        raise ValueError(
            "`images` must be [N, H, W, 3] and `labels` [N, H, W]. Received: shapes "
            f"{images.shape} and {labels.shape}"
        )
    for name, pred in predictions.items():
        if np.shape(pred) != labels.shape:
            raise ValueError(
                f"`predictions[{name!r}]` must have the labels' shape {labels.shape}. "
                f"Received: shape {np.shape(pred)}"
            )
    columns = [("image", np.clip(images, 0, 255).astype(np.uint8))]
    columns.append(("ground truth", colorize(labels, classes.colors)))
    columns += [(name, colorize(pred, classes.colors)) for name, pred in predictions.items()]
    n, h, w = labels.shape
    fig, axes = plt.subplots(
        n, len(columns), figsize=(2.6 * len(columns) * w / h * 0.5, 1.4 * n + 1.0), squeeze=False
    )
    for row in range(n):
        for col, (name, data) in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(data[row])
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
    present = np.unique(
        np.concatenate([labels.ravel()] + [np.ravel(p) for p in predictions.values()])
    )
    handles = [
        Patch(color=classes.colors[c] / 255.0, label=classes.names[c])
        for c in present
        if c < len(classes)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_eval_curve(rows, path, *, selected=None, selected_label=None, title=None):
    """Plots mIoU (%) per domain against the training step, one line per domain.

    Args:
        rows: evaluation-curve rows, dicts with `step`, `domain` and `miou` (a fraction or None),
            as `uada.analysis.checkpoint_selection.read_curve` returns.
        path: output image path (the format follows the extension).
        selected: a step to mark with a vertical line (the reported checkpoint), or None.
        selected_label: the line's legend entry; default `"reported (<step>)"`.
        title: optional figure title.

    Returns:
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for domain in dict.fromkeys(row["domain"] for row in rows):
        points = sorted(
            (row["step"], 100 * row["miou"])
            for row in rows
            if row["domain"] == domain and row["miou"] is not None
        )
        ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=domain)
    if selected is not None:
        label = selected_label or f"reported ({selected})"
        ax.axvline(selected, color="k", linestyle="--", linewidth=1, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("mIoU (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_retrieval_curves(curves, path_stem, max_k=None):
    """Plots several runs' curves with the perfect-alignment line; writes PNG and PDF.

    Args:
        curves: dict `{run name: curve array [max_k]}`.
        path_stem: output path without extension (`.png` and `.pdf` are written).
        max_k: the x range; defaults to the curves' length.

    Returns:
        The list of written paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    max_k = max_k or max(len(c) for c in curves.values())
    k = np.arange(1, max_k + 1)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(k, k / 2, "k--", label="perfect alignment (k/2)")
    for name, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, label=name)
    ax.set_xlabel("k (nearest neighbours)")
    ax.set_ylabel("source vectors among the k nearest")
    ax.set_title("Retrieval of source among target neighbours")
    ax.set_xlim(1, max_k)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths = [f"{path_stem}.png", f"{path_stem}.pdf"]
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)
    return paths


def plot_adversarial_diagnostics(runs, output, metrics=ADVERSARIAL_DIAGNOSTICS):
    """Plots the adversarial game of UADA runs against the G step, one line per run.

    One panel per metric, from the scalars training wrote to each `WORKDIR/train`
    (TensorBoard). By default UADA's three: `domain_accuracy` (D's accuracy),
    `confusion_clipped_fraction` (target positions whose confusion term is clipped: no
    gradient) and `confusion_gradient_ratio` (`||lambda * ramp * dL_conf/dZ|| / ||dL_seg/dZ||`,
    on a log axis when some value is positive: the zeros of the ramp are then left out of the
    figure, not of the CSV). Each value is the mean over the G steps since the previous log.

    Args:
        runs: list of `(name, workdir)` pairs, in legend order.
        output: the figure's path (`.png`); a CSV with the columns `step, run, metric, value`
            is written beside it (same stem, `.csv`).
        metrics: the scalars drawn, one panel each; another method's diagnostics are its
            model's `method_metric_names` (`uada.methods`).

    Returns:
        `(figure path, CSV path)`.

    Raises:
        ValueError: if `runs` or `metrics` is empty, or a workdir has none of a metric's
            scalars (e.g. a source-only run, or one trained before they were logged).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not runs:
        raise ValueError(f"`runs` must list at least one (name, workdir). Received: {runs!r}")
    series = {name: _training_scalars(workdir, metrics) for name, workdir in runs}
    fig, axes = plt.subplots(1, len(metrics), figsize=(13 * len(metrics) / 3, 3.6), squeeze=False)
    rows = []
    for ax, metric in zip(axes[0], metrics, strict=True):
        for name, scalars in series.items():
            steps, values = zip(*scalars[metric], strict=True)
            ax.plot(steps, values, marker="o", markersize=2, label=name)
            rows += [(step, name, metric, value) for step, value in scalars[metric]]
        positive = any(value > 0 for scalars in series.values() for _, value in scalars[metric])
        if metric == "confusion_gradient_ratio" and positive:
            ax.set_yscale("log")
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("G step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
    csv_path = os.path.splitext(output)[0] + ".csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "run", "metric", "value"])
        writer.writerows(rows)
    return output, csv_path


def summarize_adversarial_diagnostics(runs, *, last_fraction=0.25, metrics=ADVERSARIAL_DIAGNOSTICS):
    """The diagnostics of each run at the end of training, as a Markdown table.

    For each run and each of `metrics`: the mean of the logged values whose step
    lies in the last `last_fraction` of the run's logged steps (each logged value is itself the
    mean over the G steps since the previous log).

    Args:
        runs: list of `(name, workdir)` pairs, as for `plot_adversarial_diagnostics`.
        last_fraction: the part of training averaged, in (0, 1]. Defaults to the last quarter.
        metrics: the scalars, as for `plot_adversarial_diagnostics`.

    Returns:
        `(text, {name: {metric: mean}})`.

    Raises:
        ValueError: as `plot_adversarial_diagnostics`, or `last_fraction` is not in (0, 1].
    """
    if not 0 < last_fraction <= 1:
        raise ValueError(
            f"`last_fraction` must be in (0, 1]. Received: last_fraction={last_fraction!r}"
        )
    means = {}
    for name, workdir in runs:
        scalars = _training_scalars(workdir, metrics)
        means[name] = {}
        for metric in metrics:
            last_step = scalars[metric][-1][0]
            start = last_step * (1 - last_fraction)
            values = [value for step, value in scalars[metric] if step > start]
            means[name][metric] = float(np.mean(values))
    lines = [
        f"Mean over the last {100 * last_fraction:g}% of the logged steps:",
        "",
        "| run | " + " | ".join(metrics) + " |",
        "|---|" + "---:|" * len(metrics),
    ]
    for name, values in means.items():
        cells = " | ".join(f"{values[metric]:.3g}" for metric in metrics)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines) + "\n", means


def _training_scalars(workdir, metrics):
    """`{metric: [(step, value), ...] sorted by step}` of `metrics` in `WORKDIR/train` (the last
    value wins where a resumed run logged a step again)."""
    from tensorboard.backend.event_processing import plugin_event_accumulator
    from tensorboard.util import tensor_util

    summary_dir = workdir_lib.summary_dir(workdir)
    tags = set()
    if os.path.isdir(summary_dir):
        events = plugin_event_accumulator.EventAccumulator(
            summary_dir, size_guidance={"tensors": 0}
        ).Reload()  # TF2 scalars are stored as tensors
        tags = set(events.Tags()["tensors"])
    if not metrics:
        raise ValueError(f"`metrics` must name at least one scalar. Received: {metrics!r}")
    missing = [metric for metric in metrics if metric not in tags]
    if missing:
        logged_by = (
            "UADA training in 'uada' mode"
            if set(missing) <= set(ADVERSARIAL_DIAGNOSTICS)
            else "the training of the mode whose metrics they are"
        )
        raise ValueError(
            f"{summary_dir} holds no TensorBoard scalars {missing} (logged by {logged_by}). "
            f"Received: workdir={workdir!r}"
        )
    scalars = {}
    for metric in metrics:
        by_step = {
            event.step: float(tensor_util.make_ndarray(event.tensor_proto))
            for event in events.Tensors(metric)
        }
        scalars[metric] = sorted(by_step.items())
    return scalars
