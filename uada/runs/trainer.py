"""`train_and_evaluate(config, workdir)`: a resumable UADA training run, then its evaluation.

In this order:

1. The workdir is locked for this run (`uada.runs.workdir_lock`: a second run there is refused, a
   dead run's lock is taken over) and gets the run's `flags.txt` and `config.json`. A workdir
   that already holds a run with another configuration is an error naming the differing fields
   (only bookkeeping fields such as `train_steps` or `checkpoint_every` may change between the
   runs of one workdir).
2. Op determinism (`--deterministic`) and the seed are set; the demo domains are generated if the
   run uses them; the datasets are prepared (TFDS) and the training stream is built
   (`uada.data.pipeline.train_dataset`).
3. The model (`uada.runs.workdir.build_model`: the `UADAModel` of the mode, or the model of a
   method of `uada.methods`) is built under the `--strategy`'s scope with the
   `--mixed_precision` policy (`uada.runs.distribute`, `uada.runs.precision`) and compiled with
   two SGD optimizers (lr schedule: docs/FIDELITY.md, *Training*; a method's discriminator gets
   its own; XLA with `--jit_compile`). With R
   replicas each replica takes its own source-first `batch_size + batch_size` batch, so a step
   sees R times the images and an epoch has R times fewer steps. Under `"multi_worker"`, only
   the chief (worker 0) writes the workdir; the other workers save their (identical) checkpoints
   into a scratch folder, as `tf.distribute` requires every worker to take part in a save.
4. The latest checkpoint of `WORKDIR/checkpoints` is restored: model (a method's discriminator
   and teacher included), both optimizers, the step and the data iterator's position (everything
   a step depends on: the instance noise and the augmentation are functions of the step and of
   the data position), so a resumed run continues exactly where the last checkpoint left it. A
   saved data position that this version's input pipeline cannot restore (a checkpoint of another
   version of uada or TensorFlow) is replaced, with a warning, by the deterministic streams drawn
   again from the seed up to the step. A damaged checkpoint (files missing, truncated, or
   failing TensorFlow's checksum) is named in one warning line and moved into
   `WORKDIR/checkpoints/damaged/`, and the run resumes from the newest intact one
   (`uada.runs.workdir.resume_checkpoint`); when every checkpoint is damaged, a checkpoint state
   cannot be parsed, or a checkpoint belongs to another configuration, the run stops with an
   error (`DamagedCheckpointError`, `CorruptCheckpointError`), never a silent restart from
   scratch.
5. Training runs G steps with Keras' progress bar, TensorBoard summaries in `WORKDIR/train`
   (`tf.summary.scalar`: losses, lr, sigma, domain accuracy, the confusion term's clipped
   fraction and gradient ratio (`UADAModel`, *Metrics*), a method's own metrics
   (`uada.methods`), skipped steps, every `log_every` steps; `tf.summary.image`: image | ground
   truth | prediction of two source and two target validation images, at step 1 and every
   `image_summary_every` steps), and a checkpoint every
   `checkpoint_every` steps and at the end (`tf.train.CheckpointManager`: the state file is
   rewritten atomically only after a checkpoint's files are complete). SIGTERM or SIGINT finishes
   the step, checkpoints it and stops with `uada.runs.preemption.TrainingInterrupted`; a write the
   filesystem refuses (no space, permission, read-only) stops with
   `uada.runs.write_errors.WorkdirWriteError`, the last complete checkpoint intact.
6. The final model is evaluated (`uada.runs.evaluation.evaluate`) on the run's domains.

The run's files, checkpoints and model building are `uada.runs.workdir`'s; this module adds the
optimizers, the loop and its summaries.

Example:

```python
from uada import config as config_lib
from uada.runs import trainer

config = config_lib.Config(source="demo_source", target="demo_target", unseen=("demo_unseen",),
                           backbone="resnet_tiny", weights="none", image_size=(64, 128),
                           train_steps=20, data_dir="/tmp/uada_data")
results = trainer.train_and_evaluate(config, "/tmp/uada_run")
```
"""

import functools
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from uada.data import domains as domains_lib
from uada.data import labels as labels_lib
from uada.data import pipeline
from uada.framework_internals import is_multi_worker
from uada.models import schedules
from uada.models.step_guard import TrainingGuard
from uada.runs import distribute, evaluation, precision, preemption, workdir_lock, write_errors
from uada.runs import workdir as workdir_lib

# ------------------------------------------------------------------------------------------------
# Optimizers


def _optimizer(config, steps_per_epoch, name):
    return schedules.sgd(
        config.learning_rate,
        steps_per_epoch=steps_per_epoch,
        decay_epochs=config.lr_decay_epochs,
        factor=config.lr_decay_factor,
        momentum=config.momentum,
        name=name,
    )


def compile_model(model, config, steps_per_epoch):
    """Compiles `model` with the SGD optimizers of the paper's setup (one for G, one for D in UADA);
    a method's discriminator gets the method's own optimizer on the same decay (`uada.methods`);
    XLA when `config.jit_compile`."""
    model.compile(
        seg_optimizer=_optimizer(config, steps_per_epoch, "seg_sgd"),
        domain_optimizer=(
            _optimizer(config, steps_per_epoch, "domain_sgd") if config.mode == "uada" else None
        ),
        decay_epochs=config.lr_decay_epochs,
        decay_factor=config.lr_decay_factor,
        jit_compile=config.jit_compile,
    )


# ------------------------------------------------------------------------------------------------
# Training


def train_and_evaluate(config, workdir, *, verbose=True):
    """Trains (or resumes) the run `config` in `workdir`, then evaluates it.

    Args:
        config: a `uada.config.Config`.
        workdir: the run's directory (created if needed).
        verbose: show the training line, the progress bar, each checkpoint's line and the
            evaluation table; else (`python -m uada.reproduce`: one line per run) the lines are
            debug records and neither bar nor table is printed.

    Returns:
        The evaluation results `{domain: {"miou", "miou_19", "per_class", "num_images"}}`.

    Raises:
        uada.runs.workdir_lock.WorkdirLockedError: another live run holds the workdir.
        uada.runs.preemption.TrainingInterrupted: SIGTERM or SIGINT stopped training after
            checkpointing the step it reached.
        uada.runs.write_errors.WorkdirWriteError: the filesystem refused a checkpoint or output
            write.
        uada.runs.workdir.DamagedCheckpointError: every checkpoint of the workdir is damaged.
        uada.runs.workdir.CorruptCheckpointError: the checkpoint state cannot be parsed, or the
            checkpoint belongs to a run of another configuration.
    """
    # The strategy comes first: MultiWorkerMirroredStrategy must exist before any other op.
    strategy = distribute.get_strategy(config.strategy)
    chief = _is_chief(strategy)
    if not chief:  # only the chief writes the workdir
        return _train_and_evaluate(config, workdir, strategy, chief, verbose)
    with write_errors.writing(workdir, lambda: workdir_lib.latest_checkpoint(workdir)):
        lock = workdir_lock.WorkdirLock(workdir).acquire()
    with lock:
        return _train_and_evaluate(config, workdir, strategy, chief, verbose)


def _train_and_evaluate(config, workdir, strategy, chief, verbose):
    # Before anything is built: the checkpoint to resume from, damaged ones set aside (by the
    # chief, which writes the workdir); a corrupt state or only damaged checkpoints stop the run.
    if chief:
        with write_errors.writing(workdir, lambda: workdir_lib.latest_checkpoint(workdir)):
            workdir_lib.write_config(config, workdir)
            prefix = workdir_lib.resume_checkpoint(workdir)
    else:
        prefix = workdir_lib.resume_checkpoint(workdir, set_aside=False)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    domains_lib.ensure_demo(config)

    source = domains_lib.get_domain(config.source, config)
    target = domains_lib.get_domain(config.target, config)
    splits = (  # a target also trains on a folder dataset's images without labels
        domains_lib.training_split(source, config),
        domains_lib.training_split(target, config, labelled=False),
    )
    replicas = strategy.num_replicas_in_sync
    steps_per_epoch = config.steps_per_epoch or _steps_per_epoch(
        config, source, target, splits, replicas
    )
    total_steps = config.train_steps or max(1, int(round(config.epochs * steps_per_epoch)))
    (logging.info if verbose else logging.debug)(
        "Training %s, %s normalization, %s backbone: %d steps (%d per epoch), %d replica(s), "
        "%s precision, workdir %s",
        config.mode, config.norm, config.backbone, total_steps, steps_per_epoch, replicas,
        "float32" if config.mixed_precision == "none" else config.mixed_precision, workdir,
    )  # fmt: skip

    precision.set_precision(config.mixed_precision)
    with strategy.scope():
        model = workdir_lib.build_model(config, steps_per_epoch)
        compile_model(model, config, steps_per_epoch)
    source_data = domains_lib.load(source, splits[0], config, for_training=True)
    target_data = (
        None
        if config.mode == "source_only"
        else domains_lib.load(target, splits[1], config, for_training=True)
    )
    stream_options = dict(
        batch_size=config.batch_size,
        seed=config.seed,
        augment=config.augment,
        image_size=tuple(config.image_size),
        shuffle_buffer=config.shuffle_buffer,
    )
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    trackables = {"model": model, "seg_optimizer": model.seg_optimizer, "step": step}
    if model.domain_optimizer is not None:
        trackables["domain_optimizer"] = model.domain_optimizer
    if replicas == 1:  # the iterator's position is checkpointed with the model
        iterator = pipeline.train_iterator(source_data, target_data, **stream_options)
        trackables["data_iterator"] = iterator
    checkpoint = tf.train.Checkpoint(**trackables)
    if prefix is not None:
        if not _restore(checkpoint, prefix, trackables):
            # A fresh stream, drawn up to the restored step: the position the checkpoint lacks.
            iterator = pipeline.train_iterator(source_data, target_data, **stream_options)
            trackables["data_iterator"] = iterator
            checkpoint = tf.train.Checkpoint(**trackables)
            _draw(iterator, int(step.numpy()), verbose)
        logging.info("Resumed from %s at step %d.", prefix, int(step.numpy()))
    manager = tf.train.CheckpointManager(
        checkpoint,
        workdir_lib.checkpoint_dir(workdir) if chief else _scratch_dir(workdir, strategy),
        max_to_keep=config.keep_checkpoints or None,  # 0: keep every checkpoint
    )
    if replicas > 1:
        # Per-replica source-first batches (uada.runs.distribute). A distributed iterator cannot be
        # checkpointed: the deterministic streams skip what the restored steps consumed.
        iterator = iter(
            distribute.distributed_train_dataset(
                strategy, source_data, target_data, skip_steps=int(step.numpy()), **stream_options
            )
        )

    if is_multi_worker(strategy):
        stop = preemption.PreemptionCheckpoints(strategy.cluster_resolver, manager)
    else:
        stop = preemption.StopOnSignals()
    with stop:
        _train_loop(
            model, config, workdir if chief else _scratch_dir(workdir, strategy), iterator, step,
            total_steps, manager, stop, verbose,
        )  # fmt: skip
    if not chief:
        return {}  # the chief evaluates and writes the results
    return evaluation.evaluate(config, workdir, model=model, print_table=verbose)


def _restore(checkpoint, prefix, trackables):
    """Restores the run's checkpoint `prefix` into `checkpoint` (of `trackables`); returns False
    when it restored everything but the input position.

    A saved input position fits only the input pipeline that wrote it, so a checkpoint of another
    version of uada or TensorFlow may hold one that this pipeline cannot restore. The model, the
    optimizers and the step then restore on their own (the workdir's configuration is the run's:
    `workdir.write_config` checked it), and the caller draws the deterministic input streams again
    up to the step. Anything else that does not fit raises as `workdir.restore` does.
    """
    try:
        workdir_lib.restore(checkpoint, prefix)
        return True
    except workdir_lib.CorruptCheckpointError as error:
        if "data_iterator" not in trackables:
            raise
        rest = {name: value for name, value in trackables.items() if name != "data_iterator"}
        try:
            workdir_lib.restore(tf.train.Checkpoint(**rest), prefix, partial=True)
        except workdir_lib.CorruptCheckpointError:
            raise error  # noqa: B904 (the first error is the one to report)
        logging.warning(
            "The input position saved in %s does not fit this version's input pipeline (the "
            "checkpoint was written by another version of uada or TensorFlow): its model, "
            "optimizers and step are restored, and the input streams are drawn again from the "
            "seed up to its step.", prefix,
        )  # fmt: skip
        logging.debug("Restoring the input position failed: %s", error)
        return False


def _draw(iterator, steps, verbose):
    """Draws the elements of `steps` training steps from `iterator`, with a progress bar.

    In Python rather than with `Dataset.skip` (as the distributed runs skip): the stream keeps the
    definition whose position the following checkpoints save, so they restore as usual."""
    progbar = keras.utils.Progbar(steps, unit_name="step", verbose=int(verbose))
    for done in range(1, steps + 1):
        next(iterator)
        progbar.update(done)


def _steps_per_epoch(config, source, target, splits, replicas=1):
    """G steps per epoch: one pass over the smallest training dataset (the paper's epoch, the
    source's and the target's training `splits`); a step takes `batch_size` images per domain on
    each of `replicas` replicas."""
    sizes = [domains_lib.num_examples(source, splits[0], config)]
    sizes.append(domains_lib.num_examples(target, splits[1], config))
    return max(1, min(sizes) // (config.batch_size * replicas))


def _is_chief(strategy):
    """Whether this process writes the workdir (always, except non-chief multi-workers)."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    return resolver.task_type in (None, "chief") or (
        resolver.task_type == "worker" and resolver.task_id == 0
    )


def _scratch_dir(workdir, strategy):
    """Where a non-chief worker writes its copy of each checkpoint (never read back)."""
    resolver = strategy.cluster_resolver
    return os.path.join(workdir, "scratch", f"{resolver.task_type}_{resolver.task_id}")


def _train_loop(model, config, workdir, iterator, step, total_steps, manager, stop, verbose):
    model.make_train_function()
    guard = TrainingGuard()
    guard.set_model(model)
    summary_dir = workdir_lib.summary_dir(workdir)
    # A refused summary write (TensorBoard) is a `WorkdirWriteError`, as a checkpoint's is.
    summaries = functools.partial(
        write_errors.writing, summary_dir, lambda: manager.latest_checkpoint
    )
    with summaries():
        writer = tf.summary.create_file_writer(summary_dir)
    image_batches = _image_summary_batches(config) if config.image_summary_every else {}
    palette = domains_lib.run_classes(config).colors
    progbar = keras.utils.Progbar(
        total_steps, stateful_metrics=model.log_names, unit_name="step", verbose=int(verbose)
    )
    log = logging.info if verbose else logging.debug
    current = int(step.numpy())
    skipped = int(model.skipped_steps.numpy())  # restored with a resumed run
    if current >= total_steps:
        logging.info("The run already finished (step %d of %d).", current, total_steps)
    model.reset_metrics()
    while current < total_steps:
        logs = model.train_function(iterator)
        current = int(step.assign_add(1).numpy())
        guard.on_train_batch_end(current, logs)
        values = {name: float(value) for name, value in logs.items()}
        if values.get("skipped_steps", 0) > skipped:
            skipped = values["skipped_steps"]
            logging.warning(
                "\nStep %d was skipped: a loss or a gradient was not finite (NaN or Inf); %d "
                "skipped so far.", current, skipped,
            )  # fmt: skip
        progbar.update(
            current, [(name, values[name]) for name in model.bar_names if name in values]
        )
        if current % config.log_every == 0 or current == total_steps:
            with summaries(), writer.as_default(step=current):
                for name, value in values.items():
                    tf.summary.scalar(name, value)
            model.reset_metrics()
        if image_batches and (current % config.image_summary_every == 0 or current == 1):
            with summaries():
                _write_prediction_images(model, image_batches, writer, current, palette)
        if current % config.checkpoint_every == 0 or current == total_steps:
            _save_checkpoint(manager, current)
            # One line under the progress bar, which ends its own line only when it is complete.
            log(
                "%sSaved checkpoint %s",
                "" if current == total_steps else "\n",
                os.path.basename(manager.latest_checkpoint),
            )
        if stop.requested:  # what was logged reaches TensorBoard before the run stops
            with summaries():
                writer.flush()
        stop.check(current, total_steps, manager, lambda s: _save_checkpoint(manager, s))
    with summaries():
        writer.flush()


def _save_checkpoint(manager, step):
    """`manager.save` at `step`; a refused write is a `WorkdirWriteError`."""
    with write_errors.writing(manager.directory, lambda: manager.latest_checkpoint):
        manager.save(checkpoint_number=step)


def _image_summary_batches(config):
    """A few fixed validation images of the source and the target, for prediction images."""
    batches = {}
    for role, name in (("source", config.source), ("target", config.target)):
        domain = domains_lib.get_domain(name, config)
        dataset = domains_lib.load(domain, domain.eval_split, config).take(2)
        dataset = pipeline.eval_dataset(dataset, batch_size=2, image_size=tuple(config.image_size))
        for images, labels in dataset.take(1):
            batches[role] = (images, labels.numpy())
    return batches


def _write_prediction_images(model, image_batches, writer, step, palette):
    """TensorBoard images: each row is image | ground truth | prediction (inference mode), in the
    run's `palette`."""
    with writer.as_default(step=step):
        for role, (images, labels) in image_batches.items():
            predictions = np.argmax(model.segmenter(images, training=False).numpy(), axis=-1)
            rows = np.concatenate(
                [
                    images.numpy().astype(np.uint8),
                    labels_lib.colorize(labels, palette),
                    labels_lib.colorize(predictions, palette),
                ],
                axis=2,
            )
            tf.summary.image(f"{role}/image_label_prediction", rows, max_outputs=len(rows))
