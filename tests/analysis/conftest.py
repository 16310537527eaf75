"""Fixtures of the analysis tests: the command-line tests' smoke run, shared, not copied."""

import importlib.util
import pathlib

# tests/cli/conftest.py is loaded under its own name (every test folder's conftest is `conftest`).
_spec = importlib.util.spec_from_file_location(
    "uada_tests_cli_conftest", pathlib.Path(__file__).resolve().parents[1] / "cli" / "conftest.py"
)
cli_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli_conftest)

data_dir = cli_conftest.data_dir
smoke_run = cli_conftest.smoke_run
run_command = cli_conftest.run_command
