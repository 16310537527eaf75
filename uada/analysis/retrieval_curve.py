"""The retrieval curve of the paper's Figure 4: how well source and target representations mix.

From each validation image, `positions_per_image` random positions of `Z = R(X)` are taken in
inference mode; with `n` source and `n` target vectors pooled, for every target vector and every
`k = 1..max_k` the number of source vectors among its `k` nearest neighbours (Euclidean, the vector
itself excluded) is counted and averaged over the target vectors. Perfectly aligned domains give
`y = k / 2`; fully separated ones give `y = 0`.

The domain classifier's accuracy per semantic class (which classes D can still tell apart) is
computed from the same positions, where a model has a domain classifier.

- `retrieval_curve`, `sample_positions`, `domain_accuracy_per_class`: the math;
- `run_vectors`: the sampled positions of a trained run (its workdir's latest checkpoint);
- `retrieval`: `python -m uada.retrieval`'s work: several runs' curves computed, plotted
  (`uada.analysis.figures.plot_retrieval_curves`) and written as `retrieval.png`, `.pdf`, `.csv`
  and `domain_accuracy.json`; `accuracy_table` renders the accuracies as Markdown.
"""

import csv
import json
import os

import numpy as np
import tensorflow as tf
from absl import logging

from uada.analysis import figures
from uada.data import domains as domains_lib
from uada.data import pipeline
from uada.data.labels import CLASS_NAMES, IGNORE_LABEL
from uada.runs import workdir as workdir_lib


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


def domain_accuracy_per_class(source_p_target, source_classes, target_p_target, target_classes,
                              class_names=CLASS_NAMES):  # fmt: skip
    """Accuracy of the domain classifier per semantic class, at threshold 0.5.

    Args:
        source_p_target, target_p_target: the classifier's P(target) at each position.
        source_classes, target_classes: the class index (or 255) of each position.
        class_names: the run's class names (`uada.data.domains.run_classes`); defaults to the
            19 Cityscapes classes.

    Returns:
        A dict `{class name: accuracy or None}` (None where the class has no position), plus
        `"all"` over every position.
    """
    p = np.concatenate([source_p_target, target_p_target])
    truth = np.concatenate([np.zeros(len(source_p_target)), np.ones(len(target_p_target))])
    classes = np.concatenate([source_classes, target_classes])
    correct = (p > 0.5) == (truth > 0.5)
    table = {}
    for class_id, name in enumerate(class_names):
        mask = classes == class_id
        table[name] = float(correct[mask].mean()) if mask.any() else None
    table["all"] = float(correct[classes != IGNORE_LABEL].mean()) if correct.size else None
    return table


def run_vectors(workdir, *, domain_source=None, domain_target=None, num_vectors=5000,
                positions_per_image=10, seed=0, checkpoint=None):  # fmt: skip
    """Samples source and target positions of `Z` of the run in `workdir`.

    Args:
        workdir: the run's directory.
        domain_source, domain_target: domain names; `None` for the run's own source / target.
        num_vectors: vectors per domain (at most).
        positions_per_image: random positions per validation image.
        seed: seed of the position draw (the same for every run, so runs see the same positions).
        checkpoint: a checkpoint prefix; `None` for the latest.

    Returns:
        `{"source": sample, "target": sample}`, each as `sample_positions` returns it
        (with `p_target` where the run has a domain classifier).
    """
    config = workdir_lib.load_config(workdir)
    model, _ = workdir_lib.load_model(config, workdir, checkpoint)
    domains_lib.ensure_demo(config)
    samples = {}
    for role, name in (
        ("source", domain_source or config.source),
        ("target", domain_target or config.target),
    ):
        domain = domains_lib.get_domain(name, config)
        dataset = pipeline.eval_dataset(
            domains_lib.load(domain, domain.eval_split, config),
            batch_size=config.eval_batch_size,
            image_size=tuple(config.image_size),
        )
        samples[role] = sample_positions(
            model.representation,
            dataset,
            positions_per_image=positions_per_image,
            max_vectors=num_vectors,
            seed=seed,
            domain_classifier=model.domain_classifier,
        )
    return samples


def retrieval(workdirs, output, *, names=None, domain_source=None, domain_target=None,
              num_vectors=5000, positions_per_image=10, seed=0, max_k=49):  # fmt: skip
    """Computes, plots and writes the retrieval curves of `workdirs` (see the module docstring).

    Args:
        workdirs: run directories.
        output: output folder (created).
        names: one legend name per workdir; `None` for the workdirs' folder names.
        domain_source, domain_target, num_vectors, positions_per_image, seed: see `run_vectors`.
        max_k: the largest `k`.

    Returns:
        `(curves, domain_accuracy)`: `{name: float array [max_k]}` and
        `{name: {class name or "all": accuracy or None}}` for the runs with a domain classifier.
    """
    workdirs = list(workdirs)
    names = list(names) if names else [os.path.basename(os.path.normpath(w)) for w in workdirs]
    if len(names) != len(workdirs):
        raise ValueError(
            f"`names` must give one name per workdir ({len(workdirs)}). Received: names={names}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"`names` must be distinct. Received: names={names}")
    curves, accuracy = {}, {}
    for name, workdir in zip(names, workdirs, strict=True):
        samples = run_vectors(
            workdir,
            domain_source=domain_source,
            domain_target=domain_target,
            num_vectors=num_vectors,
            positions_per_image=positions_per_image,
            seed=seed,
        )
        source, target = samples["source"], samples["target"]
        n_s, n_t = len(source["vectors"]), len(target["vectors"])
        if n_s != n_t:
            logging.warning(
                "%s: %d source and %d target vectors; perfect alignment is then k * %d / %d, not "
                "k / 2 (pass --num_vectors=%d for equal counts).",
                name, n_s, n_t, n_s, n_s + n_t - 1, min(n_s, n_t),
            )  # fmt: skip
        curves[name] = retrieval_curve(source["vectors"], target["vectors"], max_k=max_k)
        if "p_target" in source:
            accuracy[name] = domain_accuracy_per_class(
                source["p_target"], source["classes"], target["p_target"], target["classes"],
                domains_lib.run_classes(workdir_lib.load_config(workdir)).names,
            )  # fmt: skip

    os.makedirs(output, exist_ok=True)
    figures.plot_retrieval_curves(curves, os.path.join(output, "retrieval"), max_k=max_k)
    with open(os.path.join(output, "retrieval.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["k", *curves])
        for k in range(1, max_k + 1):
            writer.writerow([k, *(f"{curve[k - 1]:.4f}" for curve in curves.values())])
    with open(os.path.join(output, "domain_accuracy.json"), "w") as f:
        json.dump(accuracy, f, indent=2)
    return curves, accuracy


def accuracy_table(accuracy):
    """Renders `{run: {class: accuracy}}` as a Markdown table in percent (classes as rows, in
    the runs' order, then `all`)."""
    runs = list(accuracy)
    lines = ["| class | " + " | ".join(runs) + " |", "|---|" + "---:|" * len(runs)]
    names = dict.fromkeys(name for run in runs for name in accuracy[run] if name != "all")
    for name in [*names, "all"]:
        cells = [accuracy[run].get(name) for run in runs]
        lines.append(
            f"| {name} | "
            + " | ".join("-" if c is None else f"{100 * c:.1f}" for c in cells)
            + " |"
        )
    return "\n".join(lines)
