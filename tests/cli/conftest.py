"""Fixtures of the command-line tests: experiment parsing and one shared smoke run."""

import os
import pathlib
import subprocess
import sys
import time
import types

import pytest
import tensorflow as tf

from uada.runs import table_runs

REPO = pathlib.Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"
PAUSE_IN_SAVE = pathlib.Path(__file__).with_name("pause_in_save.py")


def parse_train_flags(*argv):
    """Parses training flags exactly as `python -m uada.train` does; returns the `Config`.

    `--flagfile=experiments/...` is the repository's, whatever the current directory.
    """
    argv = [a.replace("--flagfile=experiments/", f"--flagfile={EXPERIMENTS}/") for a in argv]
    return table_runs.parse_config(argv, experiments_dir=EXPERIMENTS)


def run_command(module, *argv, env=None, check=True, timeout=300, cwd=REPO):
    """Runs `python -m <module> argv...` from `cwd` (default: the repository root); returns the
    CompletedProcess."""
    result = subprocess.run(
        [sys.executable, "-m", module, *argv],
        cwd=cwd,
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
    from uada.runs import trainer

    workdir = tmp_path_factory.mktemp("smoke") / "run"
    config = parse_train_flags(
        "--flagfile=experiments/smoke.flags",
        f"--workdir={workdir}",
        f"--data_dir={data_dir}",
        "--train_steps=4",
    )
    results = trainer.train_and_evaluate(config, str(workdir))
    return types.SimpleNamespace(config=config, workdir=str(workdir), results=results)


# ------------------------------------------------------------------------------------------------
# Training as a separate process, for the tests that kill, signal or starve it.


def train_command(workdir, data_dir, *extra, pause_in_save_at=None):
    """`python -m uada.train` on the smoke configuration: deterministic, 8 steps, checkpoints at
    2, 4, 6, 8, a 1-image evaluation; `extra` flags override. With `pause_in_save_at=STEP` the
    checkpoint write of STEP pauses once its files are written, before the state file names them,
    after writing `WORKDIR/paused_in_save` (`pause_in_save.py`)."""
    command = [sys.executable, "-m", "uada.train"]
    if pause_in_save_at is not None:
        marker = os.path.join(workdir, "paused_in_save")
        command = [sys.executable, str(PAUSE_IN_SAVE), str(pause_in_save_at), marker]
    return [
        *command, "--flagfile=experiments/smoke.flags",
        f"--workdir={workdir}", f"--data_dir={data_dir}", "--deterministic", "--train_steps=8",
        "--eval_max_images=1", *extra,
    ]  # fmt: skip


def start_training(workdir, data_dir, *extra, pause_in_save_at=None, **env):
    """Starts `train_command` (stderr piped, as text); `env` adds environment variables."""
    return subprocess.Popen(
        train_command(workdir, data_dir, *extra, pause_in_save_at=pause_in_save_at),
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path, process, timeout=240):
    """Polls until `path` exists; fails if `process` exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if process.poll() is not None:
            raise AssertionError(
                f"training exited ({process.returncode}):\n{process.stderr.read()}"
            )
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def finish_training(workdir, data_dir, *extra):
    """Runs `train_command` to the end; returns the CompletedProcess (exit status 0)."""
    result = subprocess.run(
        train_command(workdir, data_dir, *extra), cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.fixture(scope="session")
def uninterrupted_run(tmp_path_factory, data_dir, smoke_run):
    """An uninterrupted `train_command` run (checkpoints 4, 6, 8 kept) and the values of its final
    checkpoint, the reference of the resumption tests. (`smoke_run` prepares the demo data
    first.)"""
    workdir = tmp_path_factory.mktemp("uninterrupted") / "run"
    finish_training(workdir, data_dir)
    final = checkpoint_values(os.path.join(workdir, "checkpoints", "ckpt-8"))
    return types.SimpleNamespace(workdir=str(workdir), final=final)


def checkpoint_values(prefix):
    """A checkpoint's tensors, except the iterator state and the save counter (bookkeeping)."""
    reader = tf.train.load_checkpoint(prefix)
    return {
        key: reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if "ITERATOR_STATE" not in key and key not in ("_CHECKPOINTABLE_OBJECT_GRAPH",)
        and not key.startswith("save_counter")
    }  # fmt: skip
