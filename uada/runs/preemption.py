"""Stopping a training run on SIGTERM or SIGINT without losing its steps.

A cluster preempts a job with SIGTERM (and SIGKILL a grace period later); a user stops one with
Ctrl-C (SIGINT). During the training loop either signal only requests a stop: the current step
finishes, a checkpoint of that step is written, and `TrainingInterrupted` is raised, which
`python -m uada.train` reports in one line and turns into the exit status 128 + the signal
number (143 for SIGTERM, 130 for SIGINT). Rerunning the same command resumes from that
checkpoint; with `--deterministic` the result is bit-identical to an uninterrupted run.

| processes | class | mechanism | signals |
|---|---|---|---|
| one (default, mirrored) | `StopOnSignals` | Python handlers during the loop | SIGTERM, SIGINT |
| several (multi_worker) | `PreemptionCheckpoints` | TensorFlow's (1) | SIGTERM |

(1) `tf.distribute.experimental.PreemptionCheckpointHandler`: the workers agree on the step to
save at. SIGINT keeps Python's default there (`KeyboardInterrupt`).

A second signal while the stop is pending acts as if no handler were installed (SIGTERM ends the
process at once, SIGINT raises `KeyboardInterrupt`): the way out of a stop that hangs. A signal
ignored when the loop starts (e.g. SIGINT in a background job of a script) stays ignored.
"""

import signal
import threading

import tensorflow as tf
from absl import logging

from uada.runs import write_errors

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after checkpointing the step it reached.

    Attributes:
        signum: the signal.
        step: the last step trained.
        checkpoint: the checkpoint written at `step`.
        exit_code: 128 + `signum`, the shell's convention for a process ended by a signal.
    """

    def __init__(self, signum, step, total_steps, checkpoint):
        self.signum = signum
        self.step = step
        self.checkpoint = checkpoint
        self.exit_code = 128 + signum
        super().__init__(
            f"Training stopped by {signal.Signals(signum).name} at step {step} of {total_steps}; "
            f"checkpoint {checkpoint} written. Rerun the same command to resume."
        )


class StopOnSignals:
    """Within this context, SIGTERM and SIGINT request a stop instead of ending the process.

    The training loop calls `check(step, total_steps, save)` after each step: when a stop was
    requested it saves (unless `step` is already saved) and raises `TrainingInterrupted`.
    Outside a main thread (where Python cannot install signal handlers) nothing is installed.
    """

    def __init__(self, signals=SIGNALS):
        self.signals = signals
        self.signum = None
        self._previous = {}

    def __enter__(self):
        self.signum = None
        if threading.current_thread() is not threading.main_thread():
            logging.warning("Not in the main thread: SIGTERM and SIGINT stop training at once.")
            return self
        for signum in self.signals:
            previous = signal.getsignal(signum)
            if previous is not signal.SIG_IGN:
                self._previous[signum] = previous
                signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info):
        self._restore()

    def _restore(self):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def _handle(self, signum, frame):
        del frame
        if self.signum is not None:  # a second signal: behave as without handlers
            self._restore()
            signal.raise_signal(signum)
            return
        self.signum = signum
        logging.warning(
            "%s received: finishing the current step, then checkpointing and stopping "
            "(send it again to stop at once).",
            signal.Signals(signum).name,
        )

    @property
    def requested(self):
        return self.signum is not None

    def check(self, step, total_steps, manager, save):
        """Raises `TrainingInterrupted` after `save(step)` if a stop was requested.

        Args:
            step: the last step trained.
            total_steps: the run's length (for the message).
            manager: the run's `tf.train.CheckpointManager`.
            save: `save(step)` writes a checkpoint of `step` with `manager`.
        """
        if self.signum is None:
            return
        if manager.latest_checkpoint is None or not manager.latest_checkpoint.endswith(f"-{step}"):
            save(step)
        raise TrainingInterrupted(self.signum, step, total_steps, manager.latest_checkpoint)


class PreemptionCheckpoints:
    """SIGTERM under `MultiWorkerMirroredStrategy`: TensorFlow's `PreemptionCheckpointHandler`.

    The worker that receives SIGTERM tells the others; all of them finish the same step, save a
    checkpoint of it with `manager` (the chief into the workdir) and raise
    `TrainingInterrupted`. Use as a context (it restores the SIGTERM handler that TensorFlow
    replaces) and call `check` after every step on every worker.

    Args:
        cluster_resolver: the strategy's `cluster_resolver`.
        manager: the run's `tf.train.CheckpointManager`; its checkpoint gets the handler's run
            counter.
    """

    def __init__(self, cluster_resolver, manager):
        self._cluster_resolver = cluster_resolver
        self._manager = manager
        self._step = self._total_steps = None
        self._handler = None
        self._previous = None

    def __enter__(self):
        self._previous = signal.getsignal(signal.SIGTERM)
        self._handler = tf.distribute.experimental.PreemptionCheckpointHandler(
            self._cluster_resolver,
            self._manager,
            termination_config=tf.distribute.experimental.TerminationConfig(exit_fn=self._exit),
        )
        return self

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    requested = False  # the handler decides collectively, in `check`

    def check(self, step, total_steps, manager, save):
        """Saves and raises `TrainingInterrupted` when a worker was preempted (a collective:
        every worker calls it after every step)."""
        del save  # the handler saves with the manager it was given
        self._step, self._total_steps = step, total_steps
        with write_errors.writing(manager.directory, lambda: manager.latest_checkpoint):
            self._handler.save_checkpoint_if_preempted(checkpoint_number=step)

    def _exit(self):
        raise TrainingInterrupted(
            signal.SIGTERM, self._step, self._total_steps, self._manager.latest_checkpoint
        )
