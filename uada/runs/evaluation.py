"""Per-domain, per-class IoU and mIoU of a trained run (the paper's Tables 1-6;
docs/FIDELITY.md, *Evaluation*): the library of `python -m uada.evaluate`.

- `evaluate`: a run's checkpoint (or an already restored model) evaluated; results written into
  the workdir as `eval_<measured>[_adabn].json` and `.md` (`write_results`), named by what was
  measured (`measured_resolution`: `384x768` or `full` for the paper's runs, `128x256` for a demo
  run at that size); `results_path` also finds an older workdir's `eval_384x768.json`.
- `evaluate_model`: a restored model evaluated, nothing written; with AdaBN
  (`adapt_statistics="target"`, `uada.models.adabn`) each domain's normalization statistics are
  recomputed on its unlabelled training images.

The JSON maps each domain to `{"miou", "miou_19", "per_class", "num_images"}`: `miou` in the
official convention (classes absent from the ground truth and never predicted are left out;
cityscapesscripts, `keras.metrics.MeanIoU`), `miou_19` in the original's (all 19 classes, absent
ones 0; a run on folder datasets: all of its card's classes), `per_class` each class's IoU or
`null`, by the run's class names (`uada.data.domains.run_classes`). Values are fractions in
[0, 1].

Resolutions:
- `384x768` (the paper): images at the model's input size, labels resized with nearest
  neighbour to it.
- `full`: images resized to the model's input size, logits upsampled bilinearly to each label's
  native size, labels untouched.

Every image of every domain is predicted by the same model in inference mode (moving statistics,
no domain input). Every kept checkpoint with label-free selection: `uada.analysis.eval_curve`.
"""

import contextlib
import os
import sys

import tensorflow as tf
from absl import logging

from uada import metrics
from uada.data import domains as domains_lib
from uada.data import pipeline
from uada.models import adabn, label_prediction
from uada.models.adabn import ADAPT_STATISTICS
from uada.runs import workdir as workdir_lib
from uada.runs import write_errors


def evaluate(config, workdir, domains=None, *, checkpoint=None, resolution=None,
             max_images=None, output_json=None, model=None, print_table=True,
             adapt_statistics="none", adapt_max_images=None):  # fmt: skip
    """Evaluates the run in `workdir` on `domains`; writes JSON and Markdown results.

    Args:
        config: the run's `Config` (`uada.runs.workdir.load_config(workdir)`).
        workdir: the run's directory.
        domains: domain names; `None` for the run's source, target and unseen domains.
        checkpoint: a checkpoint prefix; `None` for the workdir's latest. Ignored with `model`.
        resolution: `"384x768"` or `"full"`; `None` for `config.eval_resolution`.
        max_images: images per domain (the first ones of the split); `None` for
            `config.eval_max_images`; 0 for all.
        output_json: the JSON file; `None` for `WORKDIR/eval_<measured>[_adabn].json`
            (`measured_resolution`).
        model: an already restored model (e.g. at the end of training), else one is built
            and restored.
        print_table: print the Markdown table to stdout.
        adapt_statistics: `"none"` or `"target"` (AdaBN; see `evaluate_model`).
        adapt_max_images: images for AdaBN's statistics; `None` or 0 for all.

    Returns:
        `{domain: {"miou", "miou_19", "per_class", "num_images"}}` (and `"statistics"` with
        AdaBN).
    """
    resolution = resolution or config.eval_resolution
    if model is None:
        model, prefix = workdir_lib.load_model(config, workdir, checkpoint)
        logging.info("Evaluating %s", prefix)
    results = evaluate_model(
        model, config, domains, resolution=resolution, max_images=max_images,
        adapt_statistics=adapt_statistics, adapt_max_images=adapt_max_images,
    )  # fmt: skip
    suffix = "_adabn" if adapt_statistics == "target" else ""
    name = measured_resolution(config, resolution)
    output_json = output_json or os.path.join(workdir, f"eval_{name}{suffix}.json")
    write_results(
        output_json, results, config, resolution, workdir=workdir, print_table=print_table
    )
    return results


def evaluate_model(model, config, domains=None, *, resolution=None, max_images=None,
                   adapt_statistics="none", adapt_max_images=None):  # fmt: skip
    """Per-domain IoU of a restored model (its `segmenter`) in inference mode; writes nothing.

    Args:
        model: a restored model (`uada.runs.workdir.build_model`).
        config: the run's `Config`.
        domains, resolution, max_images: as `evaluate`'s.
        adapt_statistics: `"none"`: the model's own moving statistics for every domain.
            `"target"` (AdaBN, `uada.models.adabn`): before each domain, every normalization layer's
            statistics are recomputed on that domain's unlabelled training images (on the
            evaluated split's images where the domain has no training split, which the result's
            `"statistics"` and the log say), and restored afterwards.
        adapt_max_images: images for AdaBN's statistics; `None` or 0 for all.

    Returns:
        `{domain: {"miou", "miou_19", "per_class", "num_images"}}`, with AdaBN also
        `"statistics"`: the split whose images gave the statistics.
    """
    if adapt_statistics not in ADAPT_STATISTICS:
        raise ValueError(
            f"`adapt_statistics` must be one of {ADAPT_STATISTICS}. "
            f"Received: adapt_statistics={adapt_statistics!r}"
        )
    domains, resolution, max_images = resolve_options(config, domains, resolution, max_images)
    domains_lib.ensure_demo(config)
    predict = label_prediction.resized_label_function(model.segmenter)
    classes = domains_lib.run_classes(config)
    results = {}
    for name in domains:
        domain = domains_lib.get_domain(name, config)
        dataset = domains_lib.load(domain, domain.eval_split, config, resolution=resolution)
        if max_images:
            dataset = dataset.take(max_images)
        with _statistics(model, config, domain, adapt_statistics, adapt_max_images) as split:
            matrix = metrics.ConfusionMatrix(len(classes), classes.names)
            for images, labels in _eval_batches(dataset, config, resolution):
                matrix.update(labels.numpy(), predict(images, tf.shape(labels)[1:3]).numpy())
        results[name] = matrix.result()
        if split is not None:
            results[name]["statistics"] = split
        logging.debug("%s: mIoU %.4f", name, results[name]["miou"] or float("nan"))
    return results


def measured_resolution(config, resolution):
    """The name of what an evaluation at `resolution` measures, which names its results:
    `"full"`, or the model's input size `"HxW"` for `"384x768"` (the paper's runs keep
    `"384x768"`; a demo run at 128x256 is `"128x256"`)."""
    if resolution == "full":
        return "full"
    height, width = config.image_size
    return f"{height}x{width}"


def results_path(workdir, config, resolution, pattern="eval_{}.json"):
    """`WORKDIR/<pattern>` with `{}` the `measured_resolution`, or, in a workdir written before
    results were named so, the path with `{}` the `resolution` setting if only that exists."""
    path = os.path.join(workdir, pattern.format(measured_resolution(config, resolution)))
    older = os.path.join(workdir, pattern.format(resolution))
    return older if not os.path.exists(path) and os.path.exists(older) else path


def resolve_options(config, domains, resolution, max_images):
    """`(domains, resolution, max_images)` with the run's defaults for `None`s (see `evaluate`)."""
    return (
        list(domains or config.domains),
        resolution or config.eval_resolution,
        config.eval_max_images if max_images is None else max_images,
    )


@contextlib.contextmanager
def _statistics(model, config, domain, adapt_statistics, max_images):
    """The normalization statistics `domain` is evaluated with; yields the split whose images
    AdaBN used, or None for the model's own statistics (restored on exit)."""
    if adapt_statistics == "none":
        yield None
        return
    split = domain.train_split
    if split is None:
        split = domain.eval_split
        message = (
            f"AdaBN: {domain.name} has no training images; its normalization statistics come "
            f"from the images of the evaluated split {split!r}."
        )
        logging.warning(message)
        print(message)
    else:
        logging.info("AdaBN: statistics of %s's %r images.", domain.name, split)
    images = pipeline.eval_dataset(
        domains_lib.load(domain, split, config),
        batch_size=config.eval_batch_size,
        image_size=tuple(config.image_size),
    ).map(lambda images, labels: images)  # unlabelled: the labels are never read
    with adabn.adapted_statistics(model.segmenter, images, max_images=max_images):
        yield split


def write_results(output_json, results, config, resolution, *, workdir, print_table=True,
                  note=None):  # fmt: skip
    """Writes `results` as JSON and as a Markdown table beside it (`.md`); prints the table.

    Args:
        output_json: the JSON path.
        results: `{domain: result}` as `evaluate_model` returns.
        config: the run's `Config`.
        resolution: the evaluation resolution, for the title.
        workdir: the run's directory (a refused write names its last complete checkpoint).
        print_table: print the title and table to stdout.
        note: a line to put under the title (e.g. which checkpoint is reported and why).
    """
    table = metrics.markdown_table(results)
    height, width = config.image_size
    title = f"IoU (%) at {measured_resolution(config, resolution)}: " + (
        "images and labels at the model's input size"
        if resolution == "384x768"
        else f"images at {height}x{width}, logits upsampled to each label's native size"
    )
    statistics = {name: r["statistics"] for name, r in results.items() if "statistics" in r}
    if statistics:
        title += "; AdaBN: normalization statistics of " + ", ".join(
            f"{name} {split}" for name, split in statistics.items()
        )
    note = f"{note}\n\n" if note else ""
    output_dir = os.path.dirname(os.path.abspath(output_json))
    with write_errors.writing(output_dir, lambda: workdir_lib.latest_checkpoint(workdir)):
        os.makedirs(output_dir, exist_ok=True)
        workdir_lib.write_json(output_json, results)
        with open(os.path.splitext(output_json)[0] + ".md", "w") as f:
            f.write(f"{title}\n\n{note}{table}\n")
    if print_table:
        print(f"\n{title}, written to {output_json}\n\n{note}{table}\n")
        sys.stdout.flush()


def _eval_batches(dataset, config, resolution):
    """`(images at the model's size, labels at the evaluation resolution)` batches."""
    if resolution == "full":
        # Labels keep their native sizes: one image per batch, resized for the model only.
        for images, labels in pipeline.eval_dataset(dataset, batch_size=1):
            resized, _ = pipeline.resize(images[0], None, tuple(config.image_size))
            yield resized[None], labels
    else:
        yield from pipeline.eval_dataset(
            dataset, batch_size=config.eval_batch_size, image_size=tuple(config.image_size)
        )
