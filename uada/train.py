"""Trains a UADA run, resumably, then evaluates it.

    python -m uada.train --flagfile=experiments/<name>.flags [--workdir=DIR] [--flag=value ...]

The workdir defaults to `workdirs/<name>`.

Parses the flags once (`uada.flags`), builds the frozen `Config`, writes it into the workdir
(`flags.txt`, `config.json`) and calls `uada.train_lib.train_and_evaluate`. Rerunning the same
command resumes from the workdir's latest checkpoint. Run from the repository root (experiment
files include `experiments/base.flags` by a relative path).
"""

import sys

from absl import app

from uada import flags as uada_flags
from uada import train_lib


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected positional arguments: {argv[1:]}")
    flag_values = uada_flags.flags.FLAGS
    workdir = flag_values.workdir or uada_flags.default_workdir(sys.argv)
    if workdir is None:
        raise app.UsageError("--workdir is required when no --flagfile names the experiment.")
    train_lib.train_and_evaluate(uada_flags.train_config(flag_values), workdir)


if __name__ == "__main__":
    uada_flags.define_train_flags()
    app.run(main)
