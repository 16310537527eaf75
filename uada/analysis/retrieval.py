"""The retrieval curve of the paper's Figure 4: how well source and target representations mix.

From each validation image, `positions_per_image` random positions of `Z = R(X)` are taken in
inference mode; with `n` source and `n` target vectors pooled, for every target vector and every
`k = 1..max_k` the number of source vectors among its `k` nearest neighbours (Euclidean, the vector
itself excluded) is counted and averaged over the target vectors. Perfectly aligned domains give
`y = k / 2`; fully separated ones give `y = 0`.

The domain classifier's accuracy per semantic class (which classes D can still tell apart) is
computed from the same positions, where a model has a domain classifier.
"""

import numpy as np
import tensorflow as tf

from uada.data.labels import CLASS_NAMES, IGNORE_LABEL


def retrieval_curve(source_vectors, target_vectors, max_k=49, chunk_size=512):
    """Mean number of source vectors among each target vector's k nearest neighbours.

    Args:
        source_vectors: float array `[n_s, d]`.
        target_vectors: float array `[n_t, d]`.
        max_k: the largest `k`; the curve has `max_k` points, `k = 1..max_k`.
        chunk_size: target vectors per distance computation (memory `chunk_size * (n_s + n_t)`).

    Returns:
        float64 array `[max_k]`: entry `k - 1` is the average count for `k`.
    """
    source = np.asarray(source_vectors, dtype=np.float64)
    target = np.asarray(target_vectors, dtype=np.float64)
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(
            "`source_vectors` and `target_vectors` must be 2-D with the same width. Received: "
            f"shapes {source.shape} and {target.shape}"
        )
    pool = np.concatenate([source, target])  # [n_s + n_t, d]; source rows first
    if not 1 <= max_k < len(pool):
        raise ValueError(f"`max_k` must be in [1, {len(pool) - 1}]. Received: max_k={max_k}")
    is_source = np.arange(len(pool)) < len(source)
    pool_sq = np.sum(pool**2, axis=1)
    totals = np.zeros(max_k)
    for start in range(0, len(target), chunk_size):
        queries = target[start : start + chunk_size]  # [c, d]
        dist = pool_sq[None, :] - 2.0 * queries @ pool.T + np.sum(queries**2, axis=1)[:, None]
        # The query itself (at pool index n_s + i) is excluded.
        rows = np.arange(len(queries))
        dist[rows, len(source) + start + rows] = np.inf
        nearest = np.argpartition(dist, max_k, axis=1)[:, :max_k]  # unordered k nearest
        order = np.argsort(np.take_along_axis(dist, nearest, axis=1), axis=1, kind="stable")
        nearest = np.take_along_axis(nearest, order, axis=1)  # [c, max_k], nearest first
        totals += np.cumsum(is_source[nearest], axis=1).sum(axis=0)
    return totals / len(target)


def sample_positions(representation, dataset, *, positions_per_image=10, max_vectors=5000,
                     seed=0, domain_classifier=None):  # fmt: skip
    """Takes random positions of `Z = representation(images)` (inference mode).

    Args:
        representation: a model from images to `Z` `[N, h, w, c]` (`UADAModel.representation`).
        dataset: a `tf.data.Dataset` of `(images, labels)` batches (labels `[N, H, W]` train ids).
        positions_per_image: positions drawn uniformly per image.
        max_vectors: stop once this many vectors are taken.
        seed: seed of the position draw.
        domain_classifier: optional model from `Z` to domain logits `[N, h, w, 1]`; its
            P(target) at the positions is returned too.

    Returns:
        A dict: `vectors` float32 `[n, c]`, `classes` int `[n]` (the label at the position's
        centre pixel, 255 if ignored), and `p_target` float `[n]` if `domain_classifier` is given.
    """
    rng = np.random.default_rng(seed)
    vectors, classes, p_target = [], [], []
    taken = 0
    for images, labels in dataset:
        z = representation(images, training=False)
        n, h, w, _ = z.shape
        labels = np.asarray(labels)
        rows = rng.integers(0, h, size=(n, positions_per_image))
        cols = rng.integers(0, w, size=(n, positions_per_image))
        batch_idx = np.repeat(np.arange(n), positions_per_image)
        idx = np.stack([batch_idx, rows.ravel(), cols.ravel()], axis=1)
        vectors.append(tf.gather_nd(z, idx).numpy())
        # Label at the centre of each Z cell in the label map.
        scale_y, scale_x = labels.shape[1] / h, labels.shape[2] / w
        label_rows = np.minimum(((rows.ravel() + 0.5) * scale_y).astype(int), labels.shape[1] - 1)
        label_cols = np.minimum(((cols.ravel() + 0.5) * scale_x).astype(int), labels.shape[2] - 1)
        classes.append(labels[batch_idx, label_rows, label_cols])
        if domain_classifier is not None:
            logits = domain_classifier(z, training=False)
            p_target.append(tf.sigmoid(tf.gather_nd(logits, idx)[:, 0]).numpy())
        taken += len(idx)
        if taken >= max_vectors:
            break
    result = {
        "vectors": np.concatenate(vectors)[:max_vectors],
        "classes": np.concatenate(classes)[:max_vectors],
    }
    if domain_classifier is not None:
        result["p_target"] = np.concatenate(p_target)[:max_vectors]
    return result


def domain_accuracy_per_class(source_p_target, source_classes, target_p_target, target_classes):
    """Accuracy of the domain classifier per semantic class, at threshold 0.5.

    Returns:
        A dict `{class name: accuracy or None}` (None where the class has no position), plus
        `"all"` over every position.
    """
    p = np.concatenate([source_p_target, target_p_target])
    truth = np.concatenate([np.zeros(len(source_p_target)), np.ones(len(target_p_target))])
    classes = np.concatenate([source_classes, target_classes])
    correct = (p > 0.5) == (truth > 0.5)
    table = {}
    for class_id, name in enumerate(CLASS_NAMES):
        mask = classes == class_id
        table[name] = float(correct[mask].mean()) if mask.any() else None
    table["all"] = float(correct[classes != IGNORE_LABEL].mean()) if correct.size else None
    return table


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
