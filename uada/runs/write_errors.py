"""`WorkdirWriteError`: a checkpoint or an output file that the filesystem refuses to write.

A full disk or quota, a permission, a read-only filesystem: Python reports these as `OSError`s
with an `errno`, TensorFlow's file and checkpoint ops (`SaveV2`, `tf.io.gfile`) as
`tf.errors.OpError`s (`ResourceExhaustedError`, `PermissionDeniedError`,
`FailedPreconditionError`, `UnknownError`, ...) whose message carries the system's text.
`writing(directory, ...)` turns either into `WorkdirWriteError`, whose one-line message names
the directory and the cause and says which checkpoint is intact (a checkpoint's files are
complete before the checkpoint state names it, so a failed write never damages the last
complete checkpoint). Other errors pass through unchanged.

Example:

```python
with writing(checkpoint_dir, last_checkpoint=lambda: manager.latest_checkpoint):
    manager.save(checkpoint_number=step)
```
"""

import contextlib
import errno

import tensorflow as tf

# errno -> the cause as the message says it, and the system's own text (how TensorFlow reports it).
_CAUSES = {
    errno.ENOSPC: ("no space left on the device", "No space left on device"),
    errno.EDQUOT: ("disk quota exceeded", "Disk quota exceeded"),
    errno.EACCES: ("permission denied", "Permission denied"),
    errno.EPERM: ("operation not permitted", "Operation not permitted"),
    errno.EROFS: ("read-only file system", "Read-only file system"),
    errno.ENOTDIR: ("a path component is a file, not a directory", "Not a directory"),
    errno.EEXIST: ("a path component is a file, not a directory", "File exists"),
    errno.EIO: ("input/output error", "Input/output error"),
}


# `last_checkpoint` of a workdir that cannot even be read (e.g. permission denied).
UNREADABLE = object()


class WorkdirWriteError(OSError):
    """The filesystem refused a write of the run (see the module docstring).

    Attributes:
        directory: the directory written to.
        cause: the cause in words ("no space left on the device", ...).
        exit_code: the exit status of the command line (1).
    """

    exit_code = 1

    def __init__(self, directory, cause, last_checkpoint):
        self.directory = directory
        self.cause = cause
        if last_checkpoint is UNREADABLE:
            intact = "the checkpoints written before are untouched"
        elif last_checkpoint:
            intact = f"the last complete checkpoint, {last_checkpoint}, is intact"
        else:
            intact = "no checkpoint was completed yet"
        super().__init__(
            f"Cannot write to {directory}: {cause}; {intact}. Fix the cause and rerun the same "
            "command to resume."
        )


def cause_of(error):
    """The filesystem cause of `error` in words, or None if it is not a refused write."""
    if isinstance(error, OSError) and error.errno in _CAUSES:
        return _CAUSES[error.errno][0]
    if isinstance(error, tf.errors.OpError):
        message = error.message or ""
        for cause, text in _CAUSES.values():
            if text.lower() in message.lower():
                return cause
        # A ResourceExhaustedError without the system's text is memory (OOM), not the disk.
        if isinstance(error, tf.errors.PermissionDeniedError):
            return _CAUSES[errno.EACCES][0]
    return None


@contextlib.contextmanager
def writing(directory, last_checkpoint):
    """Within this context, a refused write raises `WorkdirWriteError` naming `directory`.

    Args:
        directory: the directory being written to (named in the message).
        last_checkpoint: `() -> prefix or None`, the run's last complete checkpoint (called only
            when a write fails).
    """
    try:
        yield
    except (OSError, tf.errors.OpError) as error:
        cause = cause_of(error)
        if cause is None or isinstance(error, WorkdirWriteError):
            raise
        try:
            checkpoint = last_checkpoint()
        except Exception:  # a workdir that refuses writes may refuse reads too
            checkpoint = UNREADABLE
        raise WorkdirWriteError(directory, cause, checkpoint) from error
