"""A run's directory: its configuration files, its checkpoints, and its model restored from them.

    WORKDIR/
      config.json          the run's `Config` (`write_config`, `load_config`)
      flags.txt            the same as flags: `python -m uada.train --flagfile=WORKDIR/flags.txt`
      checkpoints/         `tf.train.CheckpointManager`'s `ckpt-<step>` files and state file
      train/               TensorBoard summaries of training (`uada.runs.trainer`)

A workdir that already holds a run with another configuration is refused (`write_config` names
the differing fields; only bookkeeping fields such as `train_steps` or `checkpoint_every` may
change between the runs of one workdir). A checkpoint state that cannot be read or that names
missing or unreadable files is an error (`CorruptCheckpointError`), never a silent restart from
scratch; checkpoint files without a state file (a run killed during its very first save) are
ignored with a warning: no checkpoint was ever completed.

Example:

```python
from uada.runs import workdir as workdir_lib

config = workdir_lib.load_config("/tmp/uada_run")
model, prefix = workdir_lib.load_model(config, "/tmp/uada_run")  # the latest checkpoint
```
"""

import json
import os

import tensorflow as tf
from absl import logging
from google.protobuf import text_format

from uada import config as config_lib
from uada.models import build_uada_model, framework_internals, schedules

CONFIG_FILE = "config.json"
FLAGS_FILE = "flags.txt"
CHECKPOINT_DIR = "checkpoints"
SUMMARY_DIR = "train"

# Fields that may differ between the runs of one workdir: they do not change what a step computes.
_RESUMABLE_CHANGES = frozenset(
    {
        "train_steps", "checkpoint_every", "keep_checkpoints", "log_every", "image_summary_every",
        "eval_resolution", "eval_batch_size", "eval_max_images", "data_dir", "manual_dir",
    }
)  # fmt: skip


class CorruptCheckpointError(RuntimeError):
    """A workdir's checkpoint state cannot be read or names missing or unreadable files."""


# ------------------------------------------------------------------------------------------------
# The run's files


def write_config(config, workdir):
    """Writes `flags.txt` and `config.json`; refuses a workdir of a differently configured run.

    Raises:
        ValueError: `workdir` holds a run whose config differs in a field outside
            `_RESUMABLE_CHANGES`; the message names the fields and both values.
    """
    os.makedirs(workdir, exist_ok=True)
    config_path = os.path.join(workdir, CONFIG_FILE)
    if os.path.exists(config_path):
        previous = load_config(workdir)
        changed = [
            f"{name}: {getattr(previous, name)!r} -> {getattr(config, name)!r}"
            for name in config_lib.Config.__dataclass_fields__
            if getattr(previous, name) != getattr(config, name) and name not in _RESUMABLE_CHANGES
        ]
        if changed:
            raise ValueError(
                f"The workdir {workdir} holds a run with another configuration ({config_path}); "
                f"use a new --workdir, or the run's own flags (--flagfile={workdir}/{FLAGS_FILE}). "
                f"Differences: {'; '.join(changed)}"
            )
    _atomic_write(config_path, config.to_json())
    _atomic_write(os.path.join(workdir, FLAGS_FILE), config.to_flags_text())


def load_config(workdir):
    """Reads the `Config` of the run in `workdir`; errors name the file."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: --workdir must be the directory of a `python -m uada.train` run. "
            f"Received: workdir={workdir!r}"
        )
    try:
        with open(path) as f:
            return config_lib.Config.from_json(f.read())
    except (ValueError, TypeError) as error:
        raise ValueError(f"Cannot read the run's config {path}: {error}") from error


def _atomic_write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


# ------------------------------------------------------------------------------------------------
# The run's model


def build_model(config, steps_per_epoch=schedules.STEPS_PER_EPOCH):
    """Builds the `UADAModel` of `config` (not compiled).

    Args:
        config: the run's `Config`.
        steps_per_epoch: G steps per epoch (ramp and learning-rate schedule).
    """
    return build_uada_model(
        mode=config.mode,
        backbone=config.backbone,
        norm=config.norm,
        output_stride=config.output_stride,
        weights=None if config.weights == "none" else config.weights,
        image_size=tuple(config.image_size),
        lambda_conf=config.lambda_conf,
        steps_per_epoch=steps_per_epoch,
        ramp_epochs=config.ramp_epochs,
        gradient_clip=(
            {"auto": "auto", "none": None}[config.gradient_clip]
            if config.gradient_clip in ("auto", "none")
            else float(config.gradient_clip)
        ),
        seed=config.seed,
    )


# ------------------------------------------------------------------------------------------------
# Checkpoints


def checkpoint_dir(workdir):
    return os.path.join(workdir, CHECKPOINT_DIR)


def summary_dir(workdir):
    """Where training writes its TensorBoard summaries."""
    return os.path.join(workdir, SUMMARY_DIR)


def latest_checkpoint(workdir):
    """Returns the prefix of the workdir's latest complete checkpoint, or None if it has none.

    Raises:
        CorruptCheckpointError: the state file `WORKDIR/checkpoints/checkpoint` cannot be parsed,
            or names a checkpoint whose index or data files are missing.
    """
    state = _checkpoint_state(workdir)
    return None if state is None else _checked_prefix(workdir, state.model_checkpoint_path)


def all_checkpoints(workdir):
    """Returns the prefixes of every checkpoint the workdir keeps, oldest first (`[]` if none).

    The last `keep_checkpoints` of the run, or all of them with `--keep_checkpoints=0`.

    Raises:
        CorruptCheckpointError: as `latest_checkpoint`, for any of them.
    """
    state = _checkpoint_state(workdir)
    if state is None:
        return []
    paths = dict.fromkeys([*state.all_model_checkpoint_paths, state.model_checkpoint_path])
    return [_checked_prefix(workdir, path) for path in paths]  # the latest is last


def _checkpoint_state(workdir):
    """The parsed state file of `WORKDIR/checkpoints`, or None if there is none."""
    directory = checkpoint_dir(workdir)
    state_file = os.path.join(directory, "checkpoint")
    if not tf.io.gfile.exists(state_file):
        orphans = tf.io.gfile.glob(os.path.join(directory, "ckpt-*"))
        if orphans:
            logging.warning(
                "%s has checkpoint files but no state file: the run was interrupted during its "
                "first checkpoint write. Starting from step 0.",
                directory,
            )
        return None
    try:
        with tf.io.gfile.GFile(state_file) as f:
            state = framework_internals.parse_checkpoint_state(f.read())
    except (text_format.ParseError, UnicodeDecodeError) as error:
        raise CorruptCheckpointError(
            f"Cannot parse the checkpoint state file {state_file}: {error}. "
            f"{_corrupt_advice(workdir)}"
        ) from error
    if not state.model_checkpoint_path:
        raise CorruptCheckpointError(
            f"The checkpoint state file {state_file} names no checkpoint. "
            f"{_corrupt_advice(workdir)}"
        )
    return state


def _checked_prefix(workdir, path):
    """The absolute prefix of a state file's checkpoint `path`, after checking its files."""
    prefix = path if os.path.isabs(path) else os.path.join(checkpoint_dir(workdir), path)
    check_checkpoint_files(prefix, _corrupt_advice(workdir))
    return prefix


def _corrupt_advice(workdir):
    return (
        f"The workdir's checkpoints are corrupt; fix or delete {checkpoint_dir(workdir)} to start "
        "the run again from scratch, or use another --workdir."
    )


def check_checkpoint_files(prefix, advice=""):
    """Raises `CorruptCheckpointError` unless `prefix`'s index and every data shard exist."""
    index = prefix + ".index"
    if not tf.io.gfile.exists(index):
        raise CorruptCheckpointError(f"Checkpoint index {index} is missing. {advice}".strip())
    shards = tf.io.gfile.glob(prefix + ".data-*-of-*")
    if not shards:
        raise CorruptCheckpointError(f"Checkpoint data {prefix}.data-* is missing. {advice}")
    total = int(shards[0].rsplit("-of-", 1)[1])
    for shard in range(total):
        path = f"{prefix}.data-{shard:05d}-of-{total:05d}"
        if not tf.io.gfile.exists(path):
            raise CorruptCheckpointError(f"Checkpoint data file {path} is missing. {advice}")


def restore(checkpoint, prefix, *, partial=False):
    """Restores `checkpoint` (a `tf.train.Checkpoint`) from `prefix`; errors name the files.

    Args:
        checkpoint: the objects to restore.
        prefix: a checkpoint prefix (`.../ckpt-100`).
        partial: allow the checkpoint to hold objects that `checkpoint` lacks (e.g. restoring
            the model alone from a training checkpoint).
    """
    check_checkpoint_files(prefix)
    try:
        status = checkpoint.restore(prefix)
        if partial:
            status.expect_partial()
        status.assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError, IndexError, KeyError) as error:
        raise CorruptCheckpointError(
            f"Cannot restore the checkpoint {prefix} (its files are unreadable or it belongs to a "
            f"run with another configuration): {error}"
        ) from error


def restore_model(model, workdir, checkpoint=None):
    """Restores `model`'s variables from `checkpoint` or the workdir's latest; returns the prefix.

    Raises:
        FileNotFoundError: the workdir has no checkpoint.
        CorruptCheckpointError: the checkpoint cannot be read.
    """
    prefix = checkpoint or latest_checkpoint(workdir)
    if prefix is None:
        raise FileNotFoundError(
            f"No checkpoint in {checkpoint_dir(workdir)}: train first, or pass --checkpoint. "
            f"Received: workdir={workdir!r}"
        )
    restore(tf.train.Checkpoint(model=model), prefix, partial=True)
    return prefix


def load_model(config, workdir, checkpoint=None):
    """Builds the run's `UADAModel` and restores it for inference.

    Args:
        config: the run's `Config` (`load_config(workdir)`).
        workdir: the run's directory.
        checkpoint: a checkpoint prefix; `None` for the workdir's latest.

    Returns:
        `(model, prefix)`: the restored model and the checkpoint it was restored from.

    Raises:
        FileNotFoundError: the workdir has no checkpoint.
        CorruptCheckpointError: the checkpoint cannot be read.
    """
    model = build_model(config)
    prefix = restore_model(model, workdir, checkpoint)
    return model, prefix


def write_json(path, results):
    """Writes `results` as indented JSON (NaN-free: absent values are `null`)."""
    _atomic_write(path, json.dumps(results, indent=2))
