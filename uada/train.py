"""Trains a UADA run, resumably, then evaluates it.

    python -m uada.train --flagfile=experiments/<name>.flags [--workdir=DIR] [--flag=value ...]

The workdir defaults to `workdirs/<name>`.

Parses the flags once (`uada.flags`), builds the frozen `Config`, writes it into the workdir
(`flags.txt`, `config.json`) and calls `uada.runs.trainer.train_and_evaluate`. Rerunning the same
command resumes from the workdir's latest checkpoint; a damaged one (files missing, truncated or
failing their checksum) is named, moved into `checkpoints/damaged/`, and the run resumes from the
newest intact one (`uada.runs.workdir`). Run from the repository root (experiment files include
`experiments/base.flags` by a relative path).

Exit status: 0 when the run is trained and evaluated; 130 (SIGINT) or 143 (SIGTERM) when a
signal stopped it after checkpointing (`uada.runs.preemption`); 1 with a short message when
another run holds the workdir (`uada.runs.workdir_lock`), the filesystem refused a write
(`uada.runs.write_errors`), or no checkpoint of the workdir can be restored (each one tried is
listed); `--verbosity=1` adds their tracebacks.
"""

# ruff: noqa: E402 (the imports below come after the console has started)
from uada import console

if __name__ == "__main__":
    console.start()  # before anything imports TensorFlow

import os
import sys

from absl import app

from uada import command_errors
from uada import flags as uada_flags
from uada.runs import trainer
from uada.runs import workdir as workdir_lib


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected positional arguments: {argv[1:]}")
    flag_values = uada_flags.flags.FLAGS
    workdir = flag_values.workdir or uada_flags.default_workdir(sys.argv)
    if workdir is None:
        raise app.UsageError("--workdir is required when no --flagfile names the experiment.")
    config = uada_flags.train_config(flag_values)
    with command_errors.reported(*command_errors.TRAINING_ERRORS, *command_errors.DATA_ERRORS):
        trainer.train_and_evaluate(config, workdir)
    print(closing_lines(workdir))


def closing_lines(workdir):
    """Where the run's files are and the commands that use them, printed at the end."""
    return "\n".join(
        [
            f"Workdir:     {workdir}",
            f"Checkpoints: {workdir_lib.checkpoint_dir(workdir)}",
            f"TensorBoard: {workdir_lib.summary_dir(workdir)}",
            "Next:",
            f"  tensorboard --logdir {workdir}",
            f"  python -m uada.evaluate --workdir={workdir}",
            f"  python -m uada.predict --workdir={workdir} --input=IMAGES "
            f"--output={os.path.join(workdir, 'predictions')}",
            f"  python -m uada.export --workdir={workdir} "
            f"--output={os.path.join(workdir, 'saved_model')}",
        ]
    )


if __name__ == "__main__":
    uada_flags.define_train_flags()
    app.run(main)
