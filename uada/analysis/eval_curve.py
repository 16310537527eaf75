"""Every kept checkpoint of a run evaluated, with label-free selection signals: the eval curve.

    python -m uada.evaluate --workdir=DIR --checkpoints=all \
        [--select=last|domain_accuracy|target_entropy|retrieval_alignment] \
        [--adapt_statistics=none|target] [--resolution=...] [--domains=...] [--max_images=N]

For each checkpoint the workdir keeps (`uada.runs.workdir.all_checkpoints`; train with
`--keep_checkpoints=0` to keep every one), oldest first, unless it is damaged (its files cannot be
read completely: `uada.runs.workdir.damage`; it is then skipped, named in a warning, in the
curve and in the reported table's note):

1. the per-domain IoU (`uada.runs.evaluation.evaluate_model`, with AdaBN if asked), cached in
   `DIR/eval_checkpoints/<measured>_adapt-<none|target>_images-<N|all>/ckpt-<step>.json`;
2. the label-free signals of `uada.analysis.checkpoint_selection` (`checkpoint_signals`, on the
   model's own statistics, from the validation images of the run's source and target, never a
   target label), cached in `DIR/eval_checkpoints/signals_images-<N|all>/ckpt-<step>.json`.

A cache file is written (atomically) once its numbers are complete, and a rerun computes only
what is missing: new checkpoints, new domains (a cache file older than its checkpoint, which was
then written again, is recomputed). From the cache the command writes

- `DIR/eval_curve.csv` (`eval_curve_<measured>[_adabn].csv` for another resolution than the
  run's or with AdaBN): one row per checkpoint and domain, columns `step, domain, miou,
  miou_19, domain_accuracy, target_entropy, retrieval_alignment, damaged`. The signals belong to
  the checkpoint and are repeated on each of its domain rows; `domain_accuracy` is empty for runs
  without a domain classifier. mIoU and signals are fractions, the entropy in nats. A damaged
  checkpoint has one row with only its step and, under `damaged`, why it cannot be read;
- `DIR/eval_curve.png` (same stem): mIoU per domain against the step, the selected checkpoint
  marked;
- `DIR/eval_<measured>[_adabn]_select_<select>.json` and `.md`: the per-domain table of the
  checkpoint chosen by `--select` (`uada.analysis.checkpoint_selection.select_checkpoint`), with a
  line saying which checkpoint it is and why, also printed.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from uada.analysis import checkpoint_selection, figures, retrieval_curve
from uada.data import domains as domains_lib
from uada.data import pipeline
from uada.runs import evaluation
from uada.runs import workdir as workdir_lib

CACHE_DIR = "eval_checkpoints"


def evaluate_checkpoints(config, workdir, domains=None, *, resolution=None, max_images=None,
                         adapt_statistics="none", adapt_max_images=None, select="last",
                         print_table=True):  # fmt: skip
    """Evaluates every kept checkpoint, writes the curve, reports the selected checkpoint.

    Args:
        config: the run's `Config`.
        workdir: the run's directory.
        domains, resolution, max_images, adapt_statistics, adapt_max_images: as
            `uada.runs.evaluation.evaluate`'s.
        select: `"last"` or a signal of `uada.analysis.checkpoint_selection.SIGNALS`.
        print_table: print the selected checkpoint's table and why it was selected.

    Returns:
        `(rows, step, results)`: the curve rows, the selected step and its per-domain results.

    Raises:
        FileNotFoundError: the workdir has no checkpoint.
        uada.runs.workdir.DamagedCheckpointError: every checkpoint is damaged.
        ValueError: `select` is unknown or needs a signal the run does not have.
    """
    if select not in checkpoint_selection.SELECTIONS:
        raise ValueError(
            f"`select` must be one of {checkpoint_selection.SELECTIONS}. "
            f"Received: select={select!r}"
        )
    if select == "domain_accuracy" and config.mode != "uada":
        raise ValueError(
            f"--select=domain_accuracy needs a domain classifier, which only runs of mode 'uada' "
            f"have; the run in {workdir} has mode {config.mode!r}. Received: select={select!r}"
        )
    domains, resolution, max_images = evaluation.resolve_options(
        config, domains, resolution, max_images
    )
    prefixes = workdir_lib.all_checkpoints(workdir)
    if not prefixes:
        raise FileNotFoundError(
            f"No checkpoint in {workdir_lib.checkpoint_dir(workdir)}: train first. "
            f"Received: workdir={workdir!r}"
        )
    images_tag = f"images-{max_images or 'all'}"
    results_dir = evaluation.results_path(
        os.path.join(workdir, CACHE_DIR), config, resolution,
        f"{{}}_adapt-{adapt_statistics}_{images_tag}",
    )  # fmt: skip
    signals_dir = os.path.join(workdir, CACHE_DIR, f"signals_{images_tag}")
    model = None
    rows, per_step, damaged = [], {}, {}
    progbar = keras.utils.Progbar(len(prefixes), unit_name="checkpoint")
    for index, prefix in enumerate(prefixes):
        name = os.path.basename(prefix)
        step = checkpoint_step(prefix)
        reason = workdir_lib.damage(prefix)
        if reason is not None:  # skipped, and listed in the curve and the note
            logging.warning("%s (step %d) is damaged, skipped: %s.", name, step, reason)
            damaged[prefix] = reason
            progbar.update(index + 1)
            continue
        results_path = os.path.join(results_dir, f"{name}.json")
        signals_path = os.path.join(signals_dir, f"{name}.json")
        results = _read_cached(results_path, "results", prefix) or {}
        signals = _read_cached(signals_path, "signals", prefix)
        missing = [domain for domain in domains if domain not in results]
        if missing or signals is None:
            if model is None:
                model = workdir_lib.build_model(config)
            workdir_lib.restore_model(model, workdir, prefix)
            if missing:
                new = evaluation.evaluate_model(
                    model, config, missing, resolution=resolution, max_images=max_images,
                    adapt_statistics=adapt_statistics, adapt_max_images=adapt_max_images,
                )  # fmt: skip
                results.update(new)
                _write_cached(results_path, name, step, "results", results)
            if signals is None:
                signals = checkpoint_signals(model, config, max_images=max_images)
                _write_cached(signals_path, name, step, "signals", signals)
            logging.info("%s (step %d): evaluated (%d domain(s)).", name, step, len(missing))
        else:
            logging.info("%s (step %d): reused %s.", name, step, results_path)
        progbar.update(index + 1)
        per_step[step] = results
        for domain in domains:
            rows.append(
                {
                    "step": step,
                    "domain": domain,
                    "miou": results[domain]["miou"],
                    "miou_19": results[domain]["miou_19"],
                    **signals,
                }
            )

    if not rows:
        raise workdir_lib.DamagedCheckpointError(
            f"Every checkpoint of {workdir_lib.checkpoint_dir(workdir)} is damaged; nothing was "
            f"evaluated:\n{workdir_lib.damaged_lines(damaged)}",
            damaged,
        )
    step, reason = checkpoint_selection.select_checkpoint(rows, select)
    note = f"Reporting checkpoint ckpt-{step} (step {step}): {reason}."
    if damaged:
        note += (
            " Damaged checkpoints, skipped: "
            + "; ".join(f"{prefix} ({why})" for prefix, why in damaged.items())
            + "."
        )
    logging.info(note)
    suffix = "_adabn" if adapt_statistics == "target" else ""
    measured = evaluation.measured_resolution(config, resolution)
    stem = "eval_curve" if (resolution, suffix) == (config.eval_resolution, "") else (
        f"eval_curve_{measured}{suffix}"
    )  # fmt: skip
    listed = [{"step": checkpoint_step(p), "damaged": why} for p, why in damaged.items()]
    checkpoint_selection.write_curve(
        os.path.join(workdir, f"{stem}.csv"), sorted(rows + listed, key=lambda r: r["step"])
    )
    figures.plot_eval_curve(
        rows, os.path.join(workdir, f"{stem}.png"), selected=step,
        selected_label=f"reported: step {step} (--select={select})",
        title=f"{os.path.basename(os.path.normpath(workdir))}: mIoU per checkpoint",
    )  # fmt: skip
    selected = {domain: per_step[step][domain] for domain in domains}
    evaluation.write_results(
        os.path.join(workdir, f"eval_{measured}{suffix}_select_{select}.json"),
        selected, config, resolution, workdir=workdir, print_table=print_table,
        note=f"{note} Curve: {os.path.join(workdir, stem)}.csv",
    )  # fmt: skip
    return rows, step, selected


def checkpoint_step(prefix):
    """The training step of a checkpoint prefix `.../ckpt-<step>` (checkpoints are numbered by
    the step they were written at)."""
    name = os.path.basename(prefix)
    try:
        return int(name.rsplit("-", 1)[1])
    except (IndexError, ValueError) as error:
        raise ValueError(
            f"A checkpoint prefix must end in '-<step>'. Received: {prefix!r}"
        ) from error


def checkpoint_signals(model, config, *, max_images=0, num_vectors=5000, positions_per_image=10,
                       seed=0, max_k=49):  # fmt: skip
    """The label-free signals of a restored model (`uada.analysis.checkpoint_selection`).

    Computed in inference mode on the validation images of the run's source and target (at most
    `max_images` each); no label is read.

    Args:
        model: a restored `UADAModel`.
        config: the run's `Config`.
        max_images: images per domain; 0 for all.
        num_vectors, positions_per_image, seed, max_k: the retrieval curve's sampling, as in
            `python -m uada.retrieval` (equally many source and target vectors are used; `max_k`
            is lowered if there are too few vectors).

    Returns:
        `{"domain_accuracy": float or None (no domain classifier), "target_entropy": float,
        "retrieval_alignment": float}`.
    """
    domains_lib.ensure_demo(config)
    has_d = model.domain_classifier is not None

    @tf.function(reduce_retracing=True, autograph=False)
    def forward(images):
        z = model.representation(images, training=False)
        logits = model.segmentation_head(z, training=False)
        return logits, (model.domain_classifier(z, training=False) if has_d else tf.zeros([0]))

    domain_logits, vectors = {}, {}
    entropy_sum, pixels = 0.0, 0
    for role, name in (("source", config.source), ("target", config.target)):
        dataset = _images(config, name, max_images)
        outputs = []
        for images, _ in dataset:  # the labels are never read
            logits, d_logits = forward(images)
            outputs.append(d_logits.numpy())
            if role == "target":
                entropy = checkpoint_selection.prediction_entropy(logits)
                entropy_sum += float(np.sum(entropy, dtype=np.float64))
                pixels += entropy.size
        domain_logits[role] = np.concatenate(outputs)
        vectors[role] = retrieval_curve.sample_positions(
            model.representation, dataset, positions_per_image=positions_per_image,
            max_vectors=num_vectors, seed=seed,
        )["vectors"]  # fmt: skip
    n = min(len(vectors["source"]), len(vectors["target"]))
    return {
        "domain_accuracy": (
            checkpoint_selection.balanced_domain_accuracy(
                domain_logits["source"], domain_logits["target"]
            )
            if has_d
            else None
        ),
        "target_entropy": entropy_sum / pixels,
        "retrieval_alignment": checkpoint_selection.retrieval_alignment(
            vectors["source"][:n], vectors["target"][:n], max_k=min(max_k, 2 * n - 1)
        ),
    }


def _images(config, name, max_images):
    """`(images, labels)` batches of a domain's validation split at the model's size."""
    domain = domains_lib.get_domain(name, config)
    dataset = domains_lib.load(domain, domain.eval_split, config)
    if max_images:
        dataset = dataset.take(max_images)
    return pipeline.eval_dataset(
        dataset, batch_size=config.eval_batch_size, image_size=tuple(config.image_size)
    )


def _read_cached(path, key, prefix):
    """A cache file's `key` entry; None when it does not exist or is older than the checkpoint
    `prefix` (a checkpoint written again, e.g. by a run restarted from scratch)."""
    if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(f"{prefix}.index"):
        return None
    with open(path) as f:
        return json.load(f)[key]


def _write_cached(path, name, step, key, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    workdir_lib.write_json(path, {"checkpoint": name, "step": step, key: value})
