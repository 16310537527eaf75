"""Segmentation metrics: the confusion matrix, per-class IoU and mIoU in both conventions
(docs/FIDELITY.md, *Evaluation*).

A confusion matrix `C[g, p]` counts the pixels of ground-truth class `g` predicted as class `p`,
accumulated over every image of a split. Pixels whose ground truth is the ignore label (255) are
not counted at all, so a prediction on an ignored pixel is never a false positive. From it:

    IoU_c = TP_c / (TP_c + FP_c + FN_c),   TP_c = C[c, c],  FP_c = sum_g C[g, c] - TP_c,
                                           FN_c = sum_p C[c, p] - TP_c.

Two conventions for a class with `TP + FP + FN = 0` (absent from the ground truth and never
predicted):

- **official** (cityscapesscripts, `keras.metrics.MeanIoU(19, ignore_class=255)`): the class is left
  out of the mean; its IoU is reported as `None`.
- **original** (the paper's code): all 19 classes count, an absent class as 0; ApolloScape, where
  nothing maps to terrain or train, is so capped at 17/19. (A run on folder datasets: all of its
  card's classes; the key keeps the name `miou_19`.)

Example:

```python
matrix = ConfusionMatrix()
for predictions, labels in batches:
    matrix.update(labels, predictions)
result = matrix.result()  # {"miou": ..., "miou_19": ..., "per_class": {...}, ...}
print(markdown_table({"cityscapes": result}))
```
"""

import math

import numpy as np

from uada.data.labels import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES


def confusion_matrix(labels, predictions, num_classes=NUM_CLASSES, ignore_label=IGNORE_LABEL):
    """Returns the confusion matrix of one batch of label maps and predicted class maps.

    Args:
        labels: integer array of ground-truth train ids, any shape; `ignore_label` is ignored.
        predictions: integer array of predicted class ids, the shape of `labels`.
        num_classes: number of classes.
        ignore_label: the ground-truth value that is not evaluated.

    Returns:
        int64 array `(num_classes, num_classes)`, rows ground truth, columns predictions.
    """
    labels = np.asarray(labels).astype(np.int64).ravel()
    predictions = np.asarray(predictions).astype(np.int64).ravel()
    if labels.shape != predictions.shape:
        raise ValueError(
            "`labels` and `predictions` must have the same number of pixels. Received: "
            f"{labels.size} labels and {predictions.size} predictions"
        )
    valid = labels != ignore_label
    labels, predictions = labels[valid], predictions[valid]
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise ValueError(
            f"Ground-truth values must be class ids in [0, {num_classes}) or {ignore_label}. "
            f"Received: {sorted(set(labels[bad].tolist()))[:10]}"
        )
    bad = (predictions < 0) | (predictions >= num_classes)
    if bad.any():
        raise ValueError(
            f"Predicted values must be class ids in [0, {num_classes}). "
            f"Received: {sorted(set(predictions[bad].tolist()))[:10]}"
        )
    counts = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_per_class(matrix):
    """Returns each class's IoU from a confusion matrix; NaN where `TP + FP + FN = 0`.

    Args:
        matrix: array `(K, K)`, rows ground truth, columns predictions.

    Returns:
        float64 array `(K,)`.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    true_positives = np.diag(matrix)
    denominator = matrix.sum(axis=0) + matrix.sum(axis=1) - true_positives
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, true_positives / denominator, np.nan)


def mean_iou(matrix, convention="official"):
    """Returns the mIoU of a confusion matrix in one of the two conventions.

    Args:
        matrix: array `(K, K)`, rows ground truth, columns predictions.
        convention: `"official"` (classes with `TP + FP + FN = 0` left out; NaN if all are) or
            `"original"` (all `K` classes, those as 0).

    Returns:
        A Python float.
    """
    ious = iou_per_class(matrix)
    if convention == "official":
        return float(np.nanmean(ious)) if np.isfinite(ious).any() else math.nan
    if convention == "original":
        return float(np.nan_to_num(ious, nan=0.0).mean())
    raise ValueError(
        f"`convention` must be one of ('official', 'original'). Received: convention={convention!r}"
    )


class ConfusionMatrix:
    """Accumulates a confusion matrix over the batches of a split and summarises it.

    Args:
        num_classes: number of classes (19).
        class_names: their names, in train-id order.
        ignore_label: the ground-truth value that is not evaluated (255).
    """

    def __init__(self, num_classes=NUM_CLASSES, class_names=CLASS_NAMES, ignore_label=IGNORE_LABEL):
        if len(class_names) != num_classes:
            raise ValueError(
                f"`class_names` must have `num_classes`={num_classes} entries. "
                f"Received: {len(class_names)} names"
            )
        self.num_classes = num_classes
        self.class_names = tuple(class_names)
        self.ignore_label = ignore_label
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.num_images = 0

    def update(self, labels, predictions):
        """Adds a batch: `labels` and `predictions` of shape `[N, H, W]` (or one `[H, W]` map)."""
        labels = np.asarray(labels)
        self.matrix += confusion_matrix(labels, predictions, self.num_classes, self.ignore_label)
        self.num_images += 1 if labels.ndim == 2 else labels.shape[0]

    def result(self):
        """Returns `{"miou", "miou_19", "per_class", "num_images"}`.

        `miou` is the official convention, `miou_19` the original's; `per_class` maps each class
        name to its IoU, or `None` for a class with `TP + FP + FN = 0`. Values are fractions in
        [0, 1].
        """
        ious = iou_per_class(self.matrix)
        return {
            "miou": _none_if_nan(mean_iou(self.matrix, "official")),
            "miou_19": mean_iou(self.matrix, "original"),
            "per_class": {
                name: _none_if_nan(float(iou))
                for name, iou in zip(self.class_names, ious, strict=True)
            },
            "num_images": int(self.num_images),
        }


def _none_if_nan(value):
    return None if math.isnan(value) else value


def markdown_table(results, class_names=None):
    """Renders per-domain results as a Markdown table in percent, one row per domain.

    Args:
        results: `{domain: result}` with results as returned by `ConfusionMatrix.result()`.
        class_names: the column order of the per-class IoUs; default: the first result's
            `per_class` order.

    Returns:
        The table as a string: columns domain, images, mIoU (official), mIoU-K (the original's,
        over all K classes: `mIoU-19`) and one per class; a class absent from a domain (IoU
        `None`) shows as `-`.
    """

    def percent(value):
        return "-" if value is None else f"{100.0 * value:.1f}"

    if class_names is None:
        class_names = list(next(iter(results.values()))["per_class"]) if results else CLASS_NAMES
    header = ["domain", "images", "mIoU", f"mIoU-{len(class_names)}", *class_names]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for domain, result in results.items():
        row = [
            domain,
            str(result["num_images"]),
            percent(result["miou"]),
            percent(result["miou_19"]),
            *(percent(result["per_class"].get(name)) for name in class_names),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
