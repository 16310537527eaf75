"""Fixtures of the analysis tests: the command-line tests' smoke run, shared, not copied.

tests/cli/conftest.py is loaded under its own module name, and this module re-exports all of its
public names: test modules import helpers with `from conftest import ...`, and `conftest` is
whichever folder's conftest pytest imported last, this one or tests/cli's.
"""

import importlib.util
import pathlib

_spec = importlib.util.spec_from_file_location(
    "uada_tests_cli_conftest", pathlib.Path(__file__).resolve().parents[1] / "cli" / "conftest.py"
)
_cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cli)

EXPERIMENTS = _cli.EXPERIMENTS
REPO = _cli.REPO
data_dir = _cli.data_dir
parse_train_flags = _cli.parse_train_flags
run_command = _cli.run_command
smoke_run = _cli.smoke_run
