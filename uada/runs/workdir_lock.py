"""`WorkdirLock`: one training run at a time in a workdir.

`python -m uada.train` holds `WORKDIR/.lock` from before it writes its config until it exits. The
file holds the owner as JSON (`{"host", "pid", "start_time", "process_start"}`) and the owner
holds an exclusive `fcntl.flock` on it, which the kernel releases when the process ends in any
way (exit, crash, SIGKILL). A second run finds the workdir locked and stops with
`WorkdirLockedError`, whose one-line message names the owner (host, pid, start time).

Who owns the workdir, as a second run decides it:

| the flock | the record left in the file | decision |
|---|---|---|
| held by another process | any | in use: refuse |
| free | empty (the last owner exited normally) | free: take it |
| free | this host | stale (the owner ended without releasing it): take over, say so |
| free | another host, touched less than `stale_after` s ago | in use: refuse (1) |
| free | another host, older | stale: take over, say so |
| unsupported by the filesystem | this host | in use while that pid runs with the recorded start |

(1) On a shared filesystem a flock may be visible to one host only.

The owner touches the file every `heartbeat` seconds (a daemon thread) so that a run on another
host can tell a live owner from a dead one; the hosts' clocks are assumed to agree within a
few seconds (NTP). A normal exit empties the file (it is never deleted: deleting a flocked file
lets two processes lock two different files of the same name).

Evaluation and prediction do not take the lock: they only read complete checkpoints.

Example:

```python
with WorkdirLock("/tmp/run"):
    ...  # write the workdir
```
"""

import datetime
import errno
import fcntl
import json
import os
import socket
import threading
import time

from absl import logging

LOCK_FILE = ".lock"


class WorkdirLockedError(RuntimeError):
    """Another live process is training in the workdir."""


class WorkdirLock:
    """An exclusive, crash-safe lock on a workdir (see the module docstring).

    Args:
        workdir: the run's directory (created if needed).
        stale_after: seconds after which a lock recorded by another host, not touched since,
            is stale.
        heartbeat: seconds between two touches of the lock file by its owner.

    Attributes:
        took_over: the stale owner's record (a dict) when `acquire` took over a stale lock,
            else `None`.
    """

    def __init__(self, workdir, *, stale_after=120.0, heartbeat=20.0):
        self.workdir = workdir
        self.path = os.path.join(workdir, LOCK_FILE)
        self.stale_after = stale_after
        self.heartbeat = heartbeat
        self.took_over = None
        self._fd = None
        self._stop = threading.Event()
        self._thread = None

    def acquire(self):
        """Takes the lock.

        Raises:
            WorkdirLockedError: another live process holds it; the message names it.
            OSError: the lock file cannot be created or written.
        """
        os.makedirs(self.workdir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            flocked = _try_flock(fd)
            owner = _read_record(fd)
            if flocked is False or (owner and self._is_live(owner, flocked, fd)):
                raise WorkdirLockedError(
                    f"The workdir {self.workdir} is in use by another training run: "
                    f"{_describe(owner)} ({self.path}). Wait for it to end, or use another "
                    "--workdir."
                )
            if owner:
                self.took_over = owner
                logging.warning(
                    "Took over the stale lock %s of a run that ended without releasing it: %s.",
                    self.path, _describe(owner),
                )  # fmt: skip
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(_own_record()).encode(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._touch, name="WorkdirLockHeartbeat", daemon=True
        )
        self._thread.start()
        return self

    def release(self):
        """Empties the lock file (a clean exit) and releases the lock; idempotent."""
        if self._fd is None:
            return
        self._stop.set()
        self._thread.join()
        try:
            os.ftruncate(self._fd, 0)
        except OSError:  # e.g. a read-only remount: the flock still goes with the process
            pass
        os.close(self._fd)  # releases the flock
        self._fd = None

    def __enter__(self):
        if self._fd is None:
            self.acquire()
        return self

    def __exit__(self, *exc_info):
        self.release()

    def _is_live(self, owner, flocked, fd):
        """Whether the recorded `owner` may still run, given that the flock is ours (`flocked`)
        or unsupported (`None`)."""
        if owner.get("host") == socket.gethostname():
            if flocked:  # the kernel released the owner's flock: the owner has ended
                return False
            start = _process_start(owner.get("pid"))  # None: no such process
            return start is not None and start == owner.get("process_start")
        return time.time() - os.fstat(fd).st_mtime < self.stale_after

    def _touch(self):
        while not self._stop.wait(self.heartbeat):
            try:
                os.utime(self.path)
            except OSError:
                pass


def _try_flock(fd):
    """True if we hold the flock, False if another process does, None if unsupported."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            return None
        raise


def _read_record(fd):
    data = os.pread(fd, 65536, 0)
    if not data.strip():
        return None
    try:
        record = json.loads(data)
    except ValueError:
        record = None
    return (
        record if isinstance(record, dict) else {"unreadable": data[:80].decode(errors="replace")}
    )


def _own_record():
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "start_time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "process_start": _process_start(os.getpid()),
    }


def _process_start(pid):
    """The start time of process `pid` in clock ticks since boot (`/proc/PID/stat` field 22), to
    tell a live pid from a reused one; None if there is no such process or no `/proc`."""
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            stat = f.read()
    except (OSError, TypeError, ValueError):
        return None
    # The command name (field 2) may hold spaces and parentheses: count from its closing ")".
    return int(stat.rsplit(")", 1)[1].split()[19])


def _describe(owner):
    if not owner:
        return "a process whose lock record is not written yet"
    if "unreadable" in owner:
        return f"an unreadable lock record {owner['unreadable']!r}"
    return f"host {owner.get('host')}, pid {owner.get('pid')}, started {owner.get('start_time')}"
