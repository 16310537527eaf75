"""`python tests/cli/pause_training.py WHERE STEP MARKER ARGS...`: `python -m uada.train ARGS...`
that pauses at step STEP after writing the file MARKER, and goes on when the test removes MARKER
(or after an hour): a test can SIGKILL or signal the process at a known point of its run.

WHERE is where the run pauses:

- `save`: inside the checkpoint write of STEP, after the checkpoint's files are written and before
  the state file names them. The pause is a write callback
  (`tf.train.CheckpointOptions.experimental_write_callbacks`, called once the files are complete)
  passed to `tf.train.CheckpointManager.save`, which the trainer calls with
  `checkpoint_number=step`.
- `step`: once step STEP is trained, before anything else of that step (its checkpoint, if it
  has one): in the trainer's progress bar update, `keras.utils.Progbar.update(STEP, ...)`.

The library itself knows nothing of either.
"""

import pathlib
import runpy
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]


def _pause(marker, text):
    """Writes `text` to `marker` and waits until the file is removed, for an hour at most."""
    path = pathlib.Path(marker)
    path.write_text(text)
    deadline = time.monotonic() + 3600
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def pause_checkpoint_write(step, marker):
    """Patches `tf.train.CheckpointManager.save` so that the write of `step` pauses."""
    import tensorflow as tf

    save = tf.train.CheckpointManager.save

    def pause(save_path):
        _pause(marker, save_path)

    def paused_save(self, checkpoint_number=None, check_interval=True, options=None):
        if checkpoint_number is not None and int(checkpoint_number) == step:
            options = tf.train.CheckpointOptions(experimental_write_callbacks=[pause])
        return save(self, checkpoint_number, check_interval, options)

    tf.train.CheckpointManager.save = paused_save


def pause_after_step(step, marker):
    """Patches `keras.utils.Progbar.update` so that the update of `step` pauses first."""
    import keras

    update = keras.utils.Progbar.update

    def paused_update(self, current, *args, **kwargs):
        if current == step:
            _pause(marker, f"step {step}")
        return update(self, current, *args, **kwargs)

    keras.utils.Progbar.update = paused_update


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))  # this checkout's uada, as `python -m` from the root finds it
    where, step, marker, *argv = sys.argv[1:]
    pause = {"save": pause_checkpoint_write, "step": pause_after_step}[where]
    pause(int(step), marker)
    sys.argv = ["uada.train", *argv]
    runpy.run_module("uada.train", run_name="__main__", alter_sys=True)
