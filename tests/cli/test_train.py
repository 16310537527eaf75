"""Training runs: smoke run end to end, exact resumption after SIGKILL, corrupt checkpoints."""

import json
import os
import shutil
import signal

import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    checkpoint_values,
    finish_training,
    parse_train_flags,
    start_training,
    wait_for,
)

from uada.data.labels import CLASS_NAMES
from uada.runs import trainer
from uada.runs import workdir as workdir_lib


def test_smoke_run_trains_checkpoints_and_evaluates(smoke_run):
    workdir, config = smoke_run.workdir, smoke_run.config
    assert workdir_lib.latest_checkpoint(workdir).endswith("ckpt-4")
    assert workdir_lib.load_config(workdir) == config
    # flags.txt is a flagfile that reproduces the run's config exactly.
    assert parse_train_flags(f"--flagfile={os.path.join(workdir, 'flags.txt')}") == config
    assert tf.io.gfile.glob(os.path.join(workdir, "train", "events.out.tfevents.*"))
    with open(os.path.join(workdir, "eval_32x64.json")) as f:
        results = json.load(f)
    assert results == smoke_run.results
    assert list(results) == ["demo_source", "demo_target", "demo_unseen"]
    for result in results.values():
        assert set(result) == {"miou", "miou_19", "per_class", "num_images"}
        assert list(result["per_class"]) == list(CLASS_NAMES)
        assert result["num_images"] > 0 and 0 <= result["miou_19"] <= result["miou"] <= 1
    assert "| demo_target |" in open(os.path.join(workdir, "eval_32x64.md")).read()


def test_rerun_resumes_and_a_finished_run_does_not_train(smoke_run, tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    shutil.copytree(smoke_run.workdir, workdir)
    before = checkpoint_values(os.path.join(workdir, "checkpoints", "ckpt-4"))
    # The same command again: the run is finished, nothing trains, the checkpoint stays.
    trainer.train_and_evaluate(smoke_run.config, workdir)
    assert workdir_lib.latest_checkpoint(workdir).endswith("ckpt-4")
    # Two more steps: resumes from step 4 and continues to 6.
    restored = []
    original_restore = workdir_lib.restore

    def spy(checkpoint, prefix, **kwargs):
        original_restore(checkpoint, prefix, **kwargs)
        restored.append((os.path.basename(prefix), int(checkpoint.step.numpy())))

    monkeypatch.setattr(workdir_lib, "restore", spy)
    trainer.train_and_evaluate(smoke_run.config.replace(train_steps=6), workdir)
    assert restored == [("ckpt-4", 4)]
    after = checkpoint_values(os.path.join(workdir, "checkpoints", "ckpt-6"))
    assert after["step/.ATTRIBUTES/VARIABLE_VALUE"] == 6
    assert after["seg_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"] == 6
    changed = [k for k in before if not np.array_equal(before[k], after[k])]
    assert len(changed) > len(before) // 2  # the weights moved


def test_workdir_of_another_run_is_refused(smoke_run, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(smoke_run.workdir, workdir)
    with pytest.raises(ValueError, match=r"another configuration.*norm: 'dan' -> 'batch'"):
        workdir_lib.write_config(smoke_run.config.replace(norm="batch"), workdir)


def test_a_corrupt_checkpoint_state_is_an_error_not_a_restart(smoke_run, tmp_path):
    # (Damaged checkpoint files: tests/cli/test_damaged_checkpoints.py.)
    workdir = str(tmp_path / "run")
    shutil.copytree(smoke_run.workdir, workdir)
    directory = os.path.join(workdir, "checkpoints")
    with open(os.path.join(directory, "checkpoint"), "w") as f:
        f.write("\x00 not a checkpoint state {{{")
    with pytest.raises(workdir_lib.CorruptCheckpointError, match="checkpoints/checkpoint"):
        trainer.train_and_evaluate(smoke_run.config.replace(train_steps=6), workdir)
    assert not os.path.exists(os.path.join(directory, "ckpt-6.index"))


def test_sigkill_and_rerun_give_identical_weights(data_dir, uninterrupted_run, tmp_path):
    """Kill mid-run, then kill during a checkpoint write (with the new checkpoint's data torn);
    each rerun of the same command resumes, and the final weights equal an uninterrupted run's."""
    workdir = str(tmp_path / "killed")
    directory = os.path.join(workdir, "checkpoints")
    # 1. SIGKILL as soon as the first checkpoint (step 2) is complete.
    process = start_training(workdir, data_dir)
    wait_for(os.path.join(directory, "checkpoint"), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(os.path.join(directory, "ckpt-8.index"))
    # 2. Rerun; SIGKILL while the last checkpoint (step 8) is written: its files exist, the state
    # file does not name it yet. Tear its data file too, as a kill in the middle of the write would.
    process = start_training(workdir, data_dir, pause_in_save_at=8)
    wait_for(os.path.join(workdir, "paused_in_save"), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert workdir_lib.latest_checkpoint(workdir).endswith(("ckpt-2", "ckpt-4", "ckpt-6"))
    with open(os.path.join(directory, "ckpt-8.data-00000-of-00001"), "r+b") as f:
        f.truncate(10)
    # 3. Rerun to the end (in this process: the resumption from disk is what is checked).
    finish_training(workdir, data_dir)

    expected = uninterrupted_run.final
    actual = checkpoint_values(os.path.join(directory, "ckpt-8"))
    assert sorted(actual) == sorted(expected)
    different = [key for key in expected if not np.array_equal(expected[key], actual[key])]
    assert not different, different[:10]
