"""The console of uada's commands: uada's own lines by default, every library's with `--verbosity`.

Every command module (`python -m uada.<name>`) starts with

    from uada import console

    if __name__ == "__main__":
        console.start()

before its other imports, then runs `app.run(main)` as usual. What the user reads:

| what | default | `--verbosity=1` (absl's flag, also `-v 1`) |
|---|---|---|
| TensorFlow's C++ start-up lines (oneDNN, CUDA, cuInit, CPU instructions) | hidden | shown |
| uada's log records | plain lines on stdout; warnings as `Warning: ...` on stderr | absl's format |
| other libraries' log records (TensorFlow, TFDS, Keras) | errors only | all |
| TFDS's progress bars | on a terminal, for work over a second | always |

Nothing is lost, only hidden: `--verbosity=1` shows every record in absl's format. TensorFlow
reads `TF_CPP_MIN_LOG_LEVEL` when it is imported, and writes its first lines before it reads it,
so `start()` reads the verbosity from the command line itself, before TensorFlow is imported
(`--verbosity` inside a `--flagfile` reaches the Python records only). A `TF_CPP_MIN_LOG_LEVEL`
set by the user is kept; `0` shows the C++ lines at any verbosity.

Only commands call this module: it changes process-wide state (environment variables, the
logging handlers), which library code never does.
"""

import contextlib
import logging
import os
import re
import sys
import tempfile

from absl import app
from absl import logging as absl_logging

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_VERBOSITY_FLAG = re.compile(r"^--?(?:v|verbosity)(?:=(.*))?$")
# What TensorFlow's C++ code writes while it is imported, before any log level applies: absl's
# pre-initialization notice, INFO and WARNING records (`I1204 12:00:00.000 ... port.cc:153] ...`)
# and the CPU-instructions record's second line. Errors are kept.
_STARTUP_LINE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IW]\d{4} |To enable the "
    r"following instructions)"
)
# Seconds a TFDS progress bar waits before it shows (on a terminal): short work shows none.
_PROGRESS_BAR_DELAY = "1"


def verbosity_from(argv):
    """The absl verbosity asked for on the command line `argv` (`--verbosity=N`,
    `--verbosity N`, `-v N`, `--v=N`), or None if none is (absl's default for a command: 0)."""
    verbosity = None
    args = iter(argv[1:])
    for arg in args:
        if arg == "--":
            break
        match = _VERBOSITY_FLAG.match(arg)
        if match is None:
            continue
        value = match.group(1) if match.group(1) is not None else next(args, "")
        with contextlib.suppress(ValueError):  # absl reports a malformed value itself
            verbosity = int(value)
    return verbosity


def is_quiet(argv, environ=os.environ):
    """Whether TensorFlow's C++ start-up lines are hidden for a command run as `argv`: below
    `--verbosity=1`, unless the user set `TF_CPP_MIN_LOG_LEVEL=0`."""
    verbosity = verbosity_from(argv)
    return (verbosity is None or verbosity < 1) and environ.get("TF_CPP_MIN_LOG_LEVEL") != "0"


def start(argv=None):
    """Sets up the console of a command; call it before anything imports TensorFlow.

    At the default verbosity: sets `TF_CPP_MIN_LOG_LEVEL=3` (unless set) and imports TensorFlow
    with its start-up lines hidden (its error lines are kept). Once absl has parsed the flags
    (`app.run`), `configure()` routes the log records by the parsed `--verbosity`.

    Args:
        argv: the command line; default `sys.argv`.
    """
    argv = sys.argv if argv is None else argv
    if is_quiet(argv):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("TQDM_DELAY", _PROGRESS_BAR_DELAY)  # read when tqdm is imported
        with _startup_lines_hidden():
            import tensorflow  # noqa: F401
    app.call_after_init(configure)


@contextlib.contextmanager
def _startup_lines_hidden():
    """Captures what is written to file descriptor 2 (C++ code writes there directly) and
    writes it back without `_STARTUP_LINE`s."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not _STARTUP_LINE.match(line)))
            sys.stderr.flush()


def configure(verbosity=None):
    """Routes log records for the console (see the module docstring); a no-op from
    `--verbosity=1` on.

    Args:
        verbosity: absl's verbosity; default: the parsed `--verbosity`.
    """
    verbosity = absl_logging.get_verbosity() if verbosity is None else verbosity
    if verbosity >= 1:
        return
    handler = absl_logging.get_absl_handler()
    handler.addFilter(_warnings_and_library_errors)
    handler.setFormatter(_ConsoleFormatter(handler.python_handler.formatter))
    own_lines = logging.StreamHandler(sys.stdout)
    own_lines.addFilter(lambda record: _is_uada(record) and record.levelno < logging.WARNING)
    own_lines.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger().addHandler(own_lines)
    if not sys.stderr.isatty():
        import tensorflow_datasets as tfds

        tfds.disable_progress_bar()


def _is_uada(record):
    return record.pathname.startswith(_PACKAGE_DIR)


def _warnings_and_library_errors(record):
    return record.levelno >= (logging.WARNING if _is_uada(record) else logging.ERROR)


class _ConsoleFormatter(logging.Formatter):
    """uada's warnings as `Warning: <message>`; other libraries' records in absl's format."""

    def __init__(self, library_formatter):
        super().__init__()
        self._library_formatter = library_formatter

    def format(self, record):
        if not _is_uada(record):
            return self._library_formatter.format(record)
        message = record.getMessage()
        lines = message.lstrip("\n")  # a leading newline ends a progress bar's line first
        text = f"{message[: len(message) - len(lines)]}{record.levelname.capitalize()}: {lines}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text
