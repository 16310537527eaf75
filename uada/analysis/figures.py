"""Every figure of uada (matplotlib, written to files):

- `prediction_grid`: the paper's Figure 5, image / ground truth / one column per model;
- `plot_eval_curve`: the mIoU of every checkpoint against the step (`uada.runs.eval_curve`);
- `plot_retrieval_curves`: the paper's Figure 4 (`uada.analysis.retrieval`).
"""

import numpy as np

from uada.data.labels import CLASS_NAMES, PALETTE, colorize


def prediction_grid(images, labels, predictions, path, *, title=None):
    """Draws one row per image: the image, its ground truth, and each model's prediction.

    Args:
        images: uint8 or float `[N, H, W, 3]` RGB in [0, 255].
        labels: integer `[N, H, W]` train ids (255 = ignored, drawn black).
        predictions: dict `{column title: integer [N, H, W] train ids}`, in column order, e.g.
            `{"source only": ..., "UADA + DAN": ...}`.
        path: output image path (the format follows the extension, e.g. `.png` or `.pdf`).
        title: optional figure title.

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
    columns.append(("ground truth", colorize(labels)))
    columns += [(name, colorize(pred)) for name, pred in predictions.items()]
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
        Patch(color=PALETTE[c] / 255.0, label=CLASS_NAMES[c])
        for c in present
        if c < len(CLASS_NAMES)
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
            as `uada.analysis.selection.read_curve` returns.
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
