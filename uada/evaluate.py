"""Per-domain, per-class IoU and mIoU of a trained run (the paper's Tables 1-6;
docs/FIDELITY.md, *Evaluation*).

    python -m uada.evaluate --workdir=DIR [--domains=cityscapes,mapillary] \
        [--checkpoint=DIR/checkpoints/ckpt-25279] [--resolution=384x768|full] [--output_json=PATH]

Domains default to the run's source, target and unseen domains, each on its validation split.
Results are printed as a Markdown table and written into the workdir as `eval_<resolution>.json`
and `eval_<resolution>.md` (`--output_json` chooses the JSON file; the table goes beside it with
the suffix `.md`). The JSON maps each domain to `{"miou", "miou_19", "per_class", "num_images"}`:
`miou` in the official convention (classes absent from the ground truth and never predicted are
left out; cityscapesscripts, `keras.metrics.MeanIoU`), `miou_19` in the original's (all 19 classes,
absent ones 0), `per_class` each class's IoU or `null`. Values are fractions in [0, 1].

Resolutions:
- `384x768` (the paper): images at the model's input size, labels resized with nearest
  neighbour to it.
- `full`: images resized to the model's input size, logits upsampled bilinearly to each label's
  native size, labels untouched.

Every image of every domain is predicted by the same model in inference mode (moving statistics,
no domain input).
"""

import os
import sys

import tensorflow as tf
from absl import app, logging

from uada import command_errors, metrics, train_lib, write_errors
from uada import domains as domains_lib
from uada.data import pipeline
from uada.train_lib import load_model


def evaluate(config, workdir, domains=None, *, checkpoint=None, resolution=None,
             max_images=None, output_json=None, model=None, print_table=True):  # fmt: skip
    """Evaluates the run in `workdir` on `domains`; writes JSON and Markdown results.

    Args:
        config: the run's `Config` (`train_lib.load_config(workdir)`).
        workdir: the run's directory.
        domains: domain names; `None` for the run's source, target and unseen domains.
        checkpoint: a checkpoint prefix; `None` for the workdir's latest. Ignored with `model`.
        resolution: `"384x768"` or `"full"`; `None` for `config.eval_resolution`.
        max_images: images per domain (the first ones of the split); `None` for
            `config.eval_max_images`; 0 for all.
        output_json: the JSON file; `None` for `WORKDIR/eval_<resolution>.json`.
        model: an already restored `UADAModel` (e.g. at the end of training), else one is built
            and restored.
        print_table: print the Markdown table to stdout.

    Returns:
        `{domain: {"miou", "miou_19", "per_class", "num_images"}}`.
    """
    domains = list(domains or config.domains)
    resolution = resolution or config.eval_resolution
    max_images = config.eval_max_images if max_images is None else max_images
    if model is None:
        model, prefix = load_model(config, workdir, checkpoint)
        logging.info("Evaluating %s", prefix)
    domains_lib.ensure_demo(config)
    predict = _predict_function(model.segmenter)
    results = {}
    for name in domains:
        domain = domains_lib.get_domain(name, config)
        dataset = domains_lib.load(domain, domain.eval_split, config, resolution=resolution)
        if max_images:
            dataset = dataset.take(max_images)
        matrix = metrics.ConfusionMatrix()
        for images, labels in _eval_batches(dataset, config, resolution):
            matrix.update(labels.numpy(), predict(images, tf.shape(labels)[1:3]).numpy())
        results[name] = matrix.result()
        logging.info("%s: mIoU %.4f", name, results[name]["miou"] or float("nan"))

    output_json = output_json or os.path.join(workdir, f"eval_{resolution}.json")
    table = metrics.markdown_table(results)
    height, width = config.image_size
    title = f"IoU (%), resolution {resolution}: " + (
        f"images and labels at the model's input size {height}x{width}"
        if resolution == "384x768"
        else f"images at {height}x{width}, logits upsampled to each label's size"
    )
    output_dir = os.path.dirname(os.path.abspath(output_json))
    with write_errors.writing(output_dir, lambda: train_lib.latest_checkpoint(workdir)):
        os.makedirs(output_dir, exist_ok=True)
        train_lib.write_json(output_json, results)
        with open(os.path.splitext(output_json)[0] + ".md", "w") as f:
            f.write(f"{title}\n\n{table}\n")
    if print_table:
        print(f"\n{title}, written to {output_json}\n\n{table}\n")
        sys.stdout.flush()
    return results


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


def _predict_function(segmenter):
    """`(images, label_size) -> predicted train ids` at `label_size` (bilinear logits)."""

    @tf.function(reduce_retracing=True)
    def predict(images, label_size):
        logits = segmenter(images, training=False)
        # At the model's own size this resize is the identity (sample points on pixel centres).
        logits = tf.image.resize(logits, label_size, method="bilinear")
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    return predict


def main(argv):
    from uada import flags as uada_flags

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    flag_values = uada_flags.flags.FLAGS
    workdir = flag_values.workdir
    config = train_lib.load_config(workdir)
    evaluate(
        config,
        workdir,
        flag_values.domains,
        checkpoint=flag_values.checkpoint,
        resolution=flag_values.resolution,
        max_images=flag_values.max_images,
        output_json=flag_values.output_json,
    )


if __name__ == "__main__":
    from uada import flags as uada_flags

    uada_flags.define_evaluate_flags()
    with command_errors.reported(write_errors.WorkdirWriteError):  # one line, exit status 1
        app.run(main)
