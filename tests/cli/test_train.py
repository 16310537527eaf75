"""Training runs: smoke run end to end, exact resumption after SIGKILL, corrupt checkpoints."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, parse_train_flags

from uada import train_lib
from uada.data.labels import CLASS_NAMES


def test_smoke_run_trains_checkpoints_and_evaluates(smoke_run):
    workdir, config = smoke_run.workdir, smoke_run.config
    assert train_lib.latest_checkpoint(workdir).endswith("ckpt-4")
    assert train_lib.load_config(workdir) == config
    # flags.txt is a flagfile that reproduces the run's config exactly.
    assert parse_train_flags(f"--flagfile={os.path.join(workdir, 'flags.txt')}") == config
    assert tf.io.gfile.glob(os.path.join(workdir, "train", "events.out.tfevents.*"))
    with open(os.path.join(workdir, "eval_384x768.json")) as f:
        results = json.load(f)
    assert results == smoke_run.results
    assert list(results) == ["demo_source", "demo_target", "demo_unseen"]
    for result in results.values():
        assert set(result) == {"miou", "miou_19", "per_class", "num_images"}
        assert list(result["per_class"]) == list(CLASS_NAMES)
        assert result["num_images"] > 0 and 0 <= result["miou_19"] <= result["miou"] <= 1
    assert "| demo_target |" in open(os.path.join(workdir, "eval_384x768.md")).read()


def _checkpoint_values(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {
        key: reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if "ITERATOR_STATE" not in key and key not in ("_CHECKPOINTABLE_OBJECT_GRAPH",)
        and not key.startswith("save_counter")
    }  # fmt: skip


def test_rerun_resumes_and_a_finished_run_does_not_train(smoke_run, tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    shutil.copytree(smoke_run.workdir, workdir)
    before = _checkpoint_values(os.path.join(workdir, "checkpoints", "ckpt-4"))
    # The same command again: the run is finished, nothing trains, the checkpoint stays.
    train_lib.train_and_evaluate(smoke_run.config, workdir)
    assert train_lib.latest_checkpoint(workdir).endswith("ckpt-4")
    # Two more steps: resumes from step 4 and continues to 6.
    restored = []
    original_restore = train_lib.restore

    def spy(checkpoint, prefix, **kwargs):
        original_restore(checkpoint, prefix, **kwargs)
        restored.append((os.path.basename(prefix), int(checkpoint.step.numpy())))

    monkeypatch.setattr(train_lib, "restore", spy)
    train_lib.train_and_evaluate(smoke_run.config.replace(train_steps=6), workdir)
    assert restored == [("ckpt-4", 4)]
    after = _checkpoint_values(os.path.join(workdir, "checkpoints", "ckpt-6"))
    assert after["step/.ATTRIBUTES/VARIABLE_VALUE"] == 6
    assert after["seg_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"] == 6
    changed = [k for k in before if not np.array_equal(before[k], after[k])]
    assert len(changed) > len(before) // 2  # the weights moved


def test_workdir_of_another_run_is_refused(smoke_run, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(smoke_run.workdir, workdir)
    with pytest.raises(ValueError, match=r"another configuration.*norm: 'dan' -> 'batch'"):
        train_lib.write_config(smoke_run.config.replace(norm="batch"), workdir)


@pytest.mark.parametrize("damage", ["garbage_state", "missing_shard", "truncated_shard"])
def test_corrupt_checkpoint_is_an_error_not_a_restart(smoke_run, tmp_path, damage):
    workdir = str(tmp_path / "run")
    shutil.copytree(smoke_run.workdir, workdir)
    directory = os.path.join(workdir, "checkpoints")
    if damage == "garbage_state":
        with open(os.path.join(directory, "checkpoint"), "w") as f:
            f.write("\x00 not a checkpoint state {{{")
        expected = "checkpoints/checkpoint"
    elif damage == "missing_shard":
        os.remove(os.path.join(directory, "ckpt-4.data-00000-of-00001"))
        expected = r"ckpt-4.data-\* is missing"
    else:
        with open(os.path.join(directory, "ckpt-4.data-00000-of-00001"), "r+b") as f:
            f.truncate(100)
        expected = "Cannot restore the checkpoint .*ckpt-4"
    with pytest.raises(train_lib.CorruptCheckpointError, match=expected):
        train_lib.train_and_evaluate(smoke_run.config.replace(train_steps=6), workdir)
    assert not os.path.exists(os.path.join(directory, "ckpt-6.index"))


def _train_command(workdir, data_dir):
    return [
        sys.executable, "-m", "uada.train", "--flagfile=experiments/smoke.flags",
        f"--workdir={workdir}", f"--data_dir={data_dir}", "--deterministic", "--train_steps=8",
        "--eval_max_images=1",
    ]  # fmt: skip


def _start(workdir, data_dir, **env):
    return subprocess.Popen(
        _train_command(workdir, data_dir),
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path, process, timeout=240):
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


def _finish(workdir, data_dir):
    result = subprocess.run(
        _train_command(workdir, data_dir), cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]


def test_sigkill_and_rerun_give_identical_weights(data_dir, smoke_run, tmp_path):
    """Kill mid-run, then kill during a checkpoint write (with the new checkpoint's data torn);
    each rerun of the same command resumes, and the final weights equal an uninterrupted run's.
    (`smoke_run` prepares the demo data first.)"""
    reference = str(tmp_path / "uninterrupted")
    _finish(reference, data_dir)

    workdir = str(tmp_path / "killed")
    directory = os.path.join(workdir, "checkpoints")
    # 1. SIGKILL as soon as the first checkpoint (step 2) is complete.
    process = _start(workdir, data_dir)
    _wait_for(os.path.join(directory, "checkpoint"), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(os.path.join(directory, "ckpt-8.index"))
    # 2. Rerun; SIGKILL while the last checkpoint (step 8) is written: its files exist, the state
    # file does not name it yet. Tear its data file too, as a kill in the middle of the write would.
    process = _start(workdir, data_dir, UADA_TEST_PAUSE_IN_SAVE_AT_STEP="8")
    _wait_for(os.path.join(workdir, "paused_in_save"), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert train_lib.latest_checkpoint(workdir).endswith(("ckpt-2", "ckpt-4", "ckpt-6"))
    with open(os.path.join(directory, "ckpt-8.data-00000-of-00001"), "r+b") as f:
        f.truncate(10)
    # 3. Rerun to the end.
    _finish(workdir, data_dir)

    expected = _checkpoint_values(os.path.join(reference, "checkpoints", "ckpt-8"))
    actual = _checkpoint_values(os.path.join(directory, "ckpt-8"))
    assert sorted(actual) == sorted(expected)
    different = [key for key in expected if not np.array_equal(expected[key], actual[key])]
    assert not different, different[:10]
