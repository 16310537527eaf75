"""Fixtures of the command-line tests: experiment parsing and one shared smoke run."""

import os
import pathlib
import subprocess
import sys
import types

import pytest

from uada import reproduce

REPO = pathlib.Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"


def parse_train_flags(*argv):
    """Parses training flags exactly as `python -m uada.train` does; returns the `Config`."""
    return reproduce.parse_config(argv)


def run_command(module, *argv, env=None, check=True, timeout=300):
    """Runs `python -m <module> argv...` from the repository root; returns the CompletedProcess."""
    result = subprocess.run(
        [sys.executable, "-m", module, *argv],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"python -m {module} failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )
    return result


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """One data directory for every smoke run of the session (the demo domains prepared once)."""
    return tmp_path_factory.mktemp("uada_data")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, data_dir):
    """A finished 4-step smoke run (experiments/smoke.flags), trained in this process."""
    from uada import train_lib

    workdir = tmp_path_factory.mktemp("smoke") / "run"
    config = parse_train_flags(
        "--flagfile=experiments/smoke.flags",
        f"--workdir={workdir}",
        f"--data_dir={data_dir}",
        "--train_steps=4",
    )
    results = train_lib.train_and_evaluate(config, str(workdir))
    return types.SimpleNamespace(config=config, workdir=str(workdir), results=results)
