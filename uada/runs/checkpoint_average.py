"""Evaluation averaged over a run's last checkpoints, as the original code reported its numbers.

The original evaluated each of a run's last three checkpoints (its evaluation script's
`--eval_all_ckpts 3`, one checkpoint every 1000 G steps) on the first 500 images of each
validation set, wrote one mIoU per checkpoint, and reported the **mean of those mIoUs** (its
summary script averages the per-checkpoint "Mean iou" lines; the confusion matrices are not
pooled). `evaluate_last_checkpoints` does the same with uada's evaluation:

    python -m uada.evaluate --workdir=DIR --checkpoints=last:3 --average --max_images=500

Every number of the result (`miou`, `miou_19`, each class's IoU) is the mean over the
checkpoints of that number (a class's mean over the checkpoints where it is defined); the
original's own convention is `miou_19` (all 19 classes, absent ones 0). `checkpoints` lists each
checkpoint's `miou` and `miou_19`. Results go to `WORKDIR/eval_<resolution>[_adabn]_last<K>.json`
and `.md` (`<resolution>` as `uada.runs.evaluation.measured_resolution` names it).
"""

import os
import re

from absl import logging

from uada.runs import evaluation
from uada.runs import workdir as workdir_lib

_LAST = re.compile(r"last:(?P<count>[1-9]\d*)")


def parse_last(value):
    """The `K` of a `--checkpoints=last:K` value, or `None` for any other value."""
    match = _LAST.fullmatch(value or "")
    return None if match is None else int(match["count"])


def evaluate_last_checkpoints(config, workdir, domains=None, *, last, print_table=True,
                              **options):  # fmt: skip
    """Evaluates the workdir's last `last` checkpoints and writes their mean (module docstring).

    Args:
        config: the run's `Config`; `workdir` its directory; `domains` as `evaluate`'s
            (`uada.runs.evaluation`).
        last: how many of the latest kept checkpoints to average (the original: 3).
        print_table: print the Markdown table to stdout.
        **options: `resolution`, `max_images`, `adapt_statistics`, `adapt_max_images`, as
            `uada.runs.evaluation.evaluate`'s.

    Returns:
        `{domain: {"miou", "miou_19", "per_class", "num_images", "checkpoints"}}`.

    Raises:
        ValueError: the workdir keeps fewer than `last` checkpoints.
        uada.runs.workdir.DamagedCheckpointError: one of them cannot be read (a mean of fewer
            checkpoints would not be the one asked for).
    """
    prefixes = workdir_lib.all_checkpoints(workdir)[-last:]
    if len(prefixes) < last:
        raise ValueError(
            f"{workdir} keeps {len(prefixes)} checkpoint(s), fewer than the {last} to average "
            f"(train with --keep_checkpoints={last} or 0). Received: --checkpoints=last:{last}"
        )
    model = workdir_lib.build_model(config)
    per_checkpoint = {}
    for prefix in prefixes:
        workdir_lib.restore_model(model, workdir, prefix)
        logging.info("Evaluating %s", prefix)
        per_checkpoint[os.path.basename(prefix)] = evaluation.evaluate_model(
            model, config, domains, **options
        )
    results = average_results(per_checkpoint)
    resolution = options.get("resolution") or config.eval_resolution
    suffix = "_adabn" if options.get("adapt_statistics") == "target" else ""
    name = evaluation.measured_resolution(config, resolution)
    output_json = os.path.join(workdir, f"eval_{name}{suffix}_last{last}.json")
    note = f"Mean over the last {last} checkpoints: {', '.join(per_checkpoint)}."
    evaluation.write_results(
        output_json, results, config, resolution, workdir=workdir, print_table=print_table,
        note=note,
    )  # fmt: skip
    return results


def average_results(per_checkpoint):
    """The mean of per-checkpoint results.

    Args:
        per_checkpoint: `{checkpoint name: {domain: result}}`, results as
            `uada.runs.evaluation.evaluate_model` returns them.

    Returns:
        `{domain: result}`: each number the mean over the checkpoints of that number (over those
        where it is not `None`; `None` if it is nowhere defined), and `checkpoints`, each
        checkpoint's `miou` and `miou_19`.
    """
    first = next(iter(per_checkpoint.values()))
    averaged = {}
    for domain, result in first.items():
        results = [by_domain[domain] for by_domain in per_checkpoint.values()]
        averaged[domain] = {
            **result,
            "miou": _mean(r["miou"] for r in results),
            "miou_19": _mean(r["miou_19"] for r in results),
            "per_class": {
                name: _mean(r["per_class"][name] for r in results) for name in result["per_class"]
            },
            "checkpoints": {
                checkpoint: {key: by_domain[domain][key] for key in ("miou", "miou_19")}
                for checkpoint, by_domain in per_checkpoint.items()
            },
        }
    return averaged


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None
