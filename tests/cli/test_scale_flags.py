"""The speed-and-scale training flags end to end: --strategy, --mixed_precision, --jit_compile."""

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_main

from uada.runs import distribute


@pytest.fixture
def shared_mirrored(monkeypatch, mirrored_strategy):
    """`--strategy=mirrored` in this process: the strategy `get_strategy("mirrored")` makes is
    checked (a `MirroredStrategy` over the two logical CPUs of tests/conftest.py) and the
    session's shared one trains in its place (one strategy per process: see `mirrored_strategy`)."""
    get_strategy = distribute.get_strategy

    def shared(name="default", devices=None):
        made = get_strategy(name, devices)
        if name != "mirrored":
            return made
        assert isinstance(made, tf.distribute.MirroredStrategy)
        assert made.extended.worker_devices == mirrored_strategy.extended.worker_devices
        return mirrored_strategy

    monkeypatch.setattr(distribute, "get_strategy", shared)


def _train(workdir, data_dir, *flags):
    """`python -m uada.train` on the smoke flags, in this process; returns what it printed
    (uada's own lines go to stdout, warnings to stderr)."""
    result = run_main(
        "uada.train", "--flagfile=experiments/smoke.flags", f"--workdir={workdir}",
        f"--data_dir={data_dir}", "--eval_max_images=2", "--image_summary_every=0", *flags,
    )  # fmt: skip
    return result.stdout + result.stderr


def _trainable(values):
    """Names of the trainable variables (the checkpoint reaches them through the optimizer)."""
    return [name for name in values if "/_trainable_variables/" in name]


def _variables(prefix):
    """The numeric tensors of a checkpoint by name (the data iterator's state left out)."""
    reader = tf.train.load_checkpoint(prefix)
    return {
        name: reader.get_tensor(name)
        for name, dtype in reader.get_variable_to_dtype_map().items()
        if dtype.is_floating or dtype.is_integer
    }


def test_mirrored_strategy_trains_checkpoints_resumes_and_evaluates(
    data_dir, smoke_run, tmp_path, shared_mirrored
):
    workdir = tmp_path / "mirrored"
    flags = ["--strategy=mirrored", "--batch_size=1", "--checkpoint_every=2"]
    log = _train(workdir, data_dir, *flags, "--train_steps=2")
    assert ", 2 replica(s), " in log
    first = _variables(str(workdir / "checkpoints" / "ckpt-2"))
    log = _train(workdir, data_dir, *flags, "--train_steps=4")
    assert "Resumed from" in log and "ckpt-2" in log
    last = _variables(str(workdir / "checkpoints" / "ckpt-4"))
    # The resumed run trained on: the step counter and the weights moved on from ckpt-2.
    step_key = next(name for name in last if name.startswith("step/"))
    assert (first[step_key], last[step_key]) == (2, 4)
    weights = _trainable(last)
    assert weights and any((first[k] != last[k]).any() for k in weights)
    results = json.loads((workdir / "eval_32x64.json").read_text())
    assert set(results) == {"demo_source", "demo_target", "demo_unseen"}
    config = json.loads((workdir / "config.json").read_text())
    assert config["strategy"] == "mirrored"


def test_float16_with_xla_trains_with_loss_scaling(data_dir, smoke_run, tmp_path):
    workdir = tmp_path / "fp16_xla"
    _train(workdir, data_dir, "--mixed_precision=mixed_float16", "--jit_compile",
           "--train_steps=2", "--checkpoint_every=2")  # fmt: skip
    values = _variables(str(workdir / "checkpoints" / "ckpt-2"))
    # Both optimizers are loss-scaled; the master weights stay float32 and finite.
    scaled = {name.split("/")[0] for name in values if "/dynamic_scale/" in name}
    assert scaled == {"seg_optimizer", "domain_optimizer"}, sorted(values)[:20]
    weights = [values[name] for name in _trainable(values)]
    assert weights and all(w.dtype == "float32" and np.isfinite(w).all() for w in weights)
    results = json.loads((workdir / "eval_32x64.json").read_text())
    assert all(0.0 <= results[d]["miou"] <= 1.0 for d in results)
