"""How the command lines report the errors a user can act on: one line, no traceback.

Every command line runs inside `reported(...)`: an error of the listed classes (a locked workdir,
a refused write, a run stopped by a signal, a damaged checkpoint, a dataset not downloaded, a
folder dataset that its card does not describe)
prints its message (one line, a few for a damaged checkpoint or a missing dataset) on stderr and
exits with the error's `exit_code` (1 if it has none).
absl's `--verbosity=1` (or `-v 1`) also logs the traceback. Any other exception keeps Python's
traceback.
"""

import contextlib
import sys

from absl import logging

from uada.data import domains
from uada.runs import preemption, workdir_lock, write_errors
from uada.runs import workdir as workdir_lib

# What a command that restores checkpoints reports in a few lines: a damaged checkpoint, one of
# another configuration, an unparsable checkpoint state.
CHECKPOINT_ERRORS = (workdir_lib.DamagedCheckpointError, workdir_lib.CorruptCheckpointError)

# What every command that reads a dataset reports in a few lines: what to download, where; what
# is wrong with a folder dataset's card.
DATA_ERRORS = (domains.MissingDatasetError, domains.DatasetCardError)
# What a training command (`uada.train`, `uada.reproduce`) reports in one line.
TRAINING_ERRORS = (
    workdir_lock.WorkdirLockedError,
    preemption.TrainingInterrupted,
    write_errors.WorkdirWriteError,
    *CHECKPOINT_ERRORS,
)


@contextlib.contextmanager
def reported(*errors):
    """Within this context, an exception of `errors` exits with its one-line message."""
    try:
        yield
    except errors as error:
        if logging.get_verbosity() >= 1:
            logging.exception("Traceback (shown because --verbosity >= 1):")
        print(flush=True)  # end the progress bar's line
        print(error, file=sys.stderr, flush=True)
        sys.exit(getattr(error, "exit_code", 1))
