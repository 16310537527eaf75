"""A run's directory: its configuration files, its checkpoints, and its model restored from them.

    WORKDIR/
      config.json          the run's `Config` (`write_config`, `load_config`)
      flags.txt            the same as flags: `python -m uada.train --flagfile=WORKDIR/flags.txt`
      checkpoints/         `tf.train.CheckpointManager`'s `ckpt-<step>` files and state file
      train/               TensorBoard summaries of training (`uada.runs.trainer`)

A workdir that already holds a run with another configuration is refused (`write_config` names
the differing fields; only bookkeeping fields such as `train_steps` or `checkpoint_every` may
change between the runs of one workdir). A checkpoint state file that cannot be parsed, or a
checkpoint that reads completely but does not fit the objects restored from it (a run of another
configuration), is an error (`CorruptCheckpointError`), never a silent restart from scratch;
checkpoint files without a state file (a run killed during its very first save) are ignored with
a warning: no checkpoint was ever completed.

A checkpoint is *damaged* when its files cannot be read completely (`damage`): its index or a
data file is missing, a file is truncated, or a tensor's bytes no longer match the CRC32C stored
with them (TensorFlow's reader checks it: a flipped bit in a weight, an optimizer slot or the
input pipeline's state is reported, never used). Restoring a damaged checkpoint raises
`DamagedCheckpointError`, whose message names it, the reason and the intact checkpoints beside
it. Resuming training (`resume_checkpoint`) skips damaged checkpoints instead: each one newer
than the newest intact checkpoint is named in one warning line, its files are moved (never
deleted) into `checkpoints/damaged/ckpt-<step>/` with a `reason.txt`, the state file no longer
lists it, and the run resumes from the newest intact checkpoint; when none is intact, nothing is
moved and `DamagedCheckpointError` lists what was tried.

Example:

```python
from uada.runs import workdir as workdir_lib

config = workdir_lib.load_config("/tmp/uada_run")
model, prefix = workdir_lib.load_model(config, "/tmp/uada_run")  # the latest checkpoint
```
"""

import json
import os
import re

import tensorflow as tf
from absl import logging
from google.protobuf import text_format

from uada import config as config_lib
from uada import framework_internals, methods
from uada.data import domains as domains_lib
from uada.models import build_uada_model, schedules

CONFIG_FILE = "config.json"
FLAGS_FILE = "flags.txt"
CHECKPOINT_DIR = "checkpoints"
DAMAGED_DIR = "damaged"  # inside CHECKPOINT_DIR: the files of damaged checkpoints, set aside
SUMMARY_DIR = "train"

# Fields that may differ between the runs of one workdir: they do not change what a step computes.
_RESUMABLE_CHANGES = frozenset(
    {
        "train_steps", "checkpoint_every", "keep_checkpoints", "log_every", "image_summary_every",
        "eval_resolution", "eval_batch_size", "eval_max_images", "data_dir", "manual_dir",
    }
)  # fmt: skip


class CorruptCheckpointError(RuntimeError):
    """A workdir's checkpoint state cannot be parsed, or a checkpoint belongs to another run."""


class DamagedCheckpointError(RuntimeError):
    """A checkpoint's files cannot be read completely (see the module docstring).

    Attributes:
        damaged: `{prefix: reason}` of the damaged checkpoints the message names.
    """

    def __init__(self, message, damaged):
        super().__init__(message)
        self.damaged = damaged


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
    """Builds the model of `config` (not compiled): the `UADAModel` of its mode, or the model of
    one of the other adaptation methods (`uada.methods.METHODS`) with its hyperparameters,
    predicting the run's classes (`uada.data.domains.run_classes`: 19 for the built-in datasets).

    Args:
        config: the run's `Config`.
        steps_per_epoch: G steps per epoch (ramp and learning-rate schedule).
    """
    if config.mode in methods.METHODS:
        build, mode_arguments = methods.build_method_model, methods.hyperparameters(config)
    else:
        build = build_uada_model
        mode_arguments = {"lambda_conf": config.lambda_conf, "ramp_epochs": config.ramp_epochs}
    return build(
        num_classes=len(domains_lib.run_classes(config)),
        mode=config.mode,
        backbone=config.backbone,
        norm=config.norm,
        output_stride=config.output_stride,
        weights=None if config.weights == "none" else config.weights,
        image_size=tuple(config.image_size),
        dan_target_epsilon=config.dan_target_epsilon or None,
        steps_per_epoch=steps_per_epoch,
        gradient_clip=(
            {"auto": "auto", "none": None}[config.gradient_clip]
            if config.gradient_clip in ("auto", "none")
            else float(config.gradient_clip)
        ),
        seed=config.seed,
        **mode_arguments,
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
        CorruptCheckpointError: the state file `WORKDIR/checkpoints/checkpoint` cannot be parsed.
    """
    prefixes = all_checkpoints(workdir)
    return prefixes[-1] if prefixes else None


def all_checkpoints(workdir):
    """Returns the prefixes of every checkpoint the workdir keeps, oldest first (`[]` if none).

    The last `keep_checkpoints` of the run, or all of them with `--keep_checkpoints=0`. Their
    files are not read: `damage` tells whether they can be.

    Raises:
        CorruptCheckpointError: as `latest_checkpoint`.
    """
    return _listed_prefixes(checkpoint_dir(workdir))


def _listed_prefixes(directory):
    """The absolute prefixes a checkpoint directory's state file lists, the latest last."""
    state = _checkpoint_state(directory)
    if state is None:
        return []
    paths = dict.fromkeys([*state.all_model_checkpoint_paths, state.model_checkpoint_path])
    return [_absolute(directory, path) for path in paths]


def _absolute(directory, path):
    return path if os.path.isabs(path) else os.path.join(directory, path)


def _checkpoint_state(directory):
    """The parsed state file of a checkpoint directory, or None if there is none."""
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
    advice = (
        f"The workdir's checkpoints are corrupt; fix or delete {directory} to start the run again "
        "from scratch, or use another --workdir."
    )
    try:
        with tf.io.gfile.GFile(state_file) as f:
            state = framework_internals.parse_checkpoint_state(f.read())
    except (text_format.ParseError, UnicodeDecodeError) as error:
        raise CorruptCheckpointError(
            f"Cannot parse the checkpoint state file {state_file}: {error}. {advice}"
        ) from error
    if not state.model_checkpoint_path:
        raise CorruptCheckpointError(
            f"The checkpoint state file {state_file} names no checkpoint. {advice}"
        )
    return state


def restore(checkpoint, prefix, *, partial=False):
    """Restores `checkpoint` (a `tf.train.Checkpoint`) from `prefix`; errors name the files.

    Args:
        checkpoint: the objects to restore.
        prefix: a checkpoint prefix (`.../ckpt-100`).
        partial: allow the checkpoint to hold objects that `checkpoint` lacks (e.g. restoring
            the model alone from a training checkpoint).

    Raises:
        DamagedCheckpointError: the checkpoint's files cannot be read completely; the message
            names the intact checkpoints of its directory.
        CorruptCheckpointError: the files read completely, but do not fit `checkpoint`'s objects.
    """
    reason = damage(prefix)
    if reason is not None:
        raise DamagedCheckpointError(_damaged_message(prefix, reason), {prefix: reason})
    status = None
    try:
        status = checkpoint.restore(prefix)
        if partial:
            status.expect_partial()
        status.assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError, IndexError, KeyError) as error:
        if status is not None:  # the error names what did not fit: no warnings at its deletion
            status.expect_partial()
        raise CorruptCheckpointError(
            f"Cannot restore the checkpoint {prefix}: its files read completely, but it belongs "
            f"to a run with another configuration: {error}"
        ) from error


# ------------------------------------------------------------------------------------------------
# Damaged checkpoints


def damage(prefix):
    """Why the checkpoint `prefix` cannot be read completely, or None if it can.

    Every tensor is read, so TensorFlow checks each one's CRC32C; the checkpoint's objects are
    not involved (whether they fit a run is `restore`'s question).

    Returns:
        None, or the reason in words, e.g. "its index file ckpt-6.index is missing", "its data
        file is truncated (...)" or "its tensor step/.ATTRIBUTES/VARIABLE_VALUE cannot be read
        (... Checksum does not match ...)".
    """
    name = os.path.basename(prefix)
    if not tf.io.gfile.exists(prefix + ".index"):
        return f"its index file {name}.index is missing"
    shards = tf.io.gfile.glob(prefix + ".data-*-of-*")
    if not shards:
        return f"its data file {name}.data-* is missing"
    total = int(shards[0].rsplit("-of-", 1)[1])
    for shard in range(total):
        data = f"{name}.data-{shard:05d}-of-{total:05d}"
        if not tf.io.gfile.exists(os.path.join(os.path.dirname(prefix), data)):
            return f"its data file {data} is missing"
    try:
        dtypes = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
    except tf.errors.OpError as error:
        return f"its index file {name}.index cannot be read ({_op_message(error)})"
    keys = sorted(dtypes)
    for start in range(0, len(keys), _KEYS_PER_READ):
        chunk = keys[start : start + _KEYS_PER_READ]
        if _read_error(prefix, chunk, dtypes) is None:
            continue
        for key in chunk:  # which tensor
            error = _read_error(prefix, [key], dtypes)
            if isinstance(error, tf.errors.OutOfRangeError):  # it ends before the tensor does
                return f"its data file is truncated (tensor {key}: {_op_message(error)})"
            if error is not None:
                return f"its tensor {key} cannot be read ({_op_message(error)})"
    return None


_KEYS_PER_READ = 64  # tensors read by one op: few index reads, a bounded amount of memory


def _read_error(prefix, keys, dtypes):
    """The error of reading the tensors `keys` of a checkpoint (their CRC32Cs checked), or None."""
    try:
        tf.raw_ops.RestoreV2(
            prefix=prefix, tensor_names=keys, shape_and_slices=[""] * len(keys),
            dtypes=[dtypes[key] for key in keys],
        )  # fmt: skip
    except tf.errors.OpError as error:
        return error
    return None


def _op_message(error):
    """An op error's own words, without the op and function names TensorFlow wraps them in."""
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", error.message)
    return re.sub(r"\s*\[Op:\w+\]$", "", message).strip()


def _damaged_message(prefix, reason):
    """A few lines: the damaged checkpoint, why, its files, the intact checkpoints beside it."""
    directory = os.path.dirname(prefix)
    try:
        others = [p for p in _listed_prefixes(directory) if p != prefix]
    except CorruptCheckpointError:
        others = []
    intact = [p for p in reversed(others) if damage(p) is None]
    files = sorted(tf.io.gfile.glob(prefix + ".*"))
    lines = [
        f"The checkpoint {prefix} is damaged: {reason}.",
        f"Its files are left as they are: {', '.join(files)}." if files else "It has no files.",
    ]
    if not intact:
        return "\n".join([*lines, f"No other checkpoint of {directory} is intact."])
    return "\n".join([
        *lines,
        f"Intact checkpoints, newest first: {', '.join(intact)}.",
        "Pass one with --checkpoint, or rerun the run's training command: it sets the damaged "
        "checkpoint aside and resumes from the newest intact one.",
    ])  # fmt: skip


def resume_checkpoint(workdir, *, set_aside=True):
    """The newest checkpoint of the workdir that can be read completely, to resume training.

    Each damaged checkpoint newer than it is named in one warning line and, with `set_aside`,
    moved into `WORKDIR/checkpoints/damaged/` and removed from the state file (a run that
    writes nothing, e.g. a non-chief worker, only skips it).

    Returns:
        The prefix, or None if the workdir has no checkpoint.

    Raises:
        DamagedCheckpointError: every checkpoint is damaged; the message lists them and why,
            and nothing was moved.
        CorruptCheckpointError: the state file cannot be parsed.
    """
    prefixes = all_checkpoints(workdir)
    damaged = {}
    for prefix in reversed(prefixes):
        reason = damage(prefix)
        if reason is None:
            break
        damaged[prefix] = reason
    else:
        if damaged:
            raise DamagedCheckpointError(
                f"No checkpoint of {checkpoint_dir(workdir)} can be restored; tried, newest "
                f"first:\n{damaged_lines(damaged)}\nNothing was moved and nothing was trained. "
                f"Restore the files from a copy, or move {checkpoint_dir(workdir)} away to start "
                "the run from scratch, or use another --workdir.",
                damaged,
            )
        return None
    for bad, reason in damaged.items():
        if set_aside:
            where = _set_aside(workdir, bad, reason, prefix)
            logging.warning(
                "Checkpoint %s is damaged: %s; its files are moved to %s. Resuming from %s.",
                bad, reason, where, prefix,
            )  # fmt: skip
        else:
            logging.warning("Checkpoint %s is damaged: %s; resuming from %s.", bad, reason, prefix)
    return prefix


def damaged_lines(damaged):
    """`{prefix: reason}` as indented lines `  prefix: reason`, for a message."""
    return "\n".join(f"  {prefix}: {reason}" for prefix, reason in damaged.items())


def _set_aside(workdir, prefix, reason, resume_from):
    """Removes `prefix` from the state file (the latest is then `resume_from`), then moves its
    files and the reason into `WORKDIR/checkpoints/damaged/<name>[.<n>]/`; returns that folder."""
    directory = checkpoint_dir(workdir)
    state = _checkpoint_state(directory)
    paths = list(state.all_model_checkpoint_paths)
    timestamps = list(state.all_model_checkpoint_timestamps)
    keep = [i for i, path in enumerate(paths) if _absolute(directory, path) != prefix]
    del state.all_model_checkpoint_paths[:]
    state.all_model_checkpoint_paths.extend(paths[i] for i in keep)
    if len(timestamps) == len(paths):
        del state.all_model_checkpoint_timestamps[:]
        state.all_model_checkpoint_timestamps.extend(timestamps[i] for i in keep)
    state.model_checkpoint_path = os.path.relpath(resume_from, directory)
    _atomic_write(os.path.join(directory, "checkpoint"), text_format.MessageToString(state))

    name = os.path.basename(prefix)
    target = os.path.join(directory, DAMAGED_DIR, name)
    number = 1
    while os.path.exists(target):  # a checkpoint of that step was damaged before: keep both
        number += 1
        target = os.path.join(directory, DAMAGED_DIR, f"{name}.{number}")
    os.makedirs(target)
    for path in tf.io.gfile.glob(prefix + ".*"):
        os.replace(path, os.path.join(target, os.path.basename(path)))
    with open(os.path.join(target, "reason.txt"), "w") as f:
        f.write(f"{prefix} was set aside when the run resumed: {reason}.\n")
    return target


def restore_model(model, workdir, checkpoint=None):
    """Restores `model`'s variables from `checkpoint` or the workdir's latest; returns the prefix.

    Raises:
        FileNotFoundError: the workdir has no checkpoint.
        DamagedCheckpointError: the checkpoint's files cannot be read completely.
        CorruptCheckpointError: the checkpoint belongs to a run of another configuration.
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
    """Builds the run's model (`build_model`) and restores it for inference.

    Args:
        config: the run's `Config` (`load_config(workdir)`).
        workdir: the run's directory.
        checkpoint: a checkpoint prefix; `None` for the workdir's latest.

    Returns:
        `(model, prefix)`: the restored model and the checkpoint it was restored from.

    Raises:
        FileNotFoundError: the workdir has no checkpoint.
        DamagedCheckpointError: the checkpoint's files cannot be read completely.
        CorruptCheckpointError: the checkpoint belongs to a run of another configuration.
    """
    model = build_model(config)
    prefix = restore_model(model, workdir, checkpoint)
    return model, prefix


def write_json(path, results):
    """Writes `results` as indented JSON (NaN-free: absent values are `null`)."""
    _atomic_write(path, json.dumps(results, indent=2))
