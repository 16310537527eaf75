"""`python tests/cli/pause_in_save.py STEP MARKER ARGS...`: `python -m uada.train ARGS...` whose
checkpoint write of step STEP pauses after the checkpoint's files are written and before the state
file names them, after writing the file MARKER: a test can SIGKILL the process mid-save.

The pause is a write callback (`tf.train.CheckpointOptions.experimental_write_callbacks`, called
once the files are complete) passed to `tf.train.CheckpointManager.save`, which the trainer calls
with `checkpoint_number=step`; the library itself knows nothing of it.
"""

import pathlib
import runpy
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]


def pause_checkpoint_write(step, marker):
    """Patches `tf.train.CheckpointManager.save` so that the write of `step` pauses for an hour."""
    import tensorflow as tf

    save = tf.train.CheckpointManager.save

    def pause(save_path):
        pathlib.Path(marker).write_text(save_path)
        time.sleep(3600)

    def paused_save(self, checkpoint_number=None, check_interval=True, options=None):
        if checkpoint_number is not None and int(checkpoint_number) == step:
            options = tf.train.CheckpointOptions(experimental_write_callbacks=[pause])
        return save(self, checkpoint_number, check_interval, options)

    tf.train.CheckpointManager.save = paused_save


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))  # this checkout's uada, as `python -m` from the root finds it
    step, marker, *argv = sys.argv[1:]
    pause_checkpoint_write(int(step), marker)
    sys.argv = ["uada.train", *argv]
    runpy.run_module("uada.train", run_name="__main__", alter_sys=True)
