"""Training runs: smoke run end to end, resumption, corrupt checkpoints (the faults a run meets,
SIGKILL included, are tests/cli/test_train_faults.py's)."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from conftest import checkpoint_values, parse_train_flags

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
