"""The speed-and-scale training flags end to end: --strategy, --mixed_precision, --jit_compile."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf
from conftest import REPO

# `python -m uada.train`, with the process's CPU split into two logical devices first (what
# `--strategy=mirrored` uses as replicas when no GPU is visible).
_TWO_CPU_TRAIN = textwrap.dedent(
    """
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    from absl import app
    from uada import flags as uada_flags, train
    uada_flags.define_train_flags()
    app.run(train.main)
    """
)


def _train(workdir, data_dir, *flags, two_cpus=False):
    command = (
        [sys.executable, "-c", _TWO_CPU_TRAIN] if two_cpus else [sys.executable, "-m", "uada.train"]
    )
    result = subprocess.run(
        [*command, "--flagfile=experiments/smoke.flags", f"--workdir={workdir}",
         f"--data_dir={data_dir}", "--eval_max_images=2", "--image_summary_every=0", *flags],
        cwd=REPO, capture_output=True, text=True, timeout=400,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stderr


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


def test_mirrored_strategy_trains_checkpoints_resumes_and_evaluates(data_dir, smoke_run, tmp_path):
    workdir = tmp_path / "mirrored"
    flags = ["--strategy=mirrored", "--batch_size=1", "--checkpoint_every=2"]
    log = _train(workdir, data_dir, *flags, "--train_steps=2", two_cpus=True)
    assert ", 2 replica(s), " in log
    first = _variables(str(workdir / "checkpoints" / "ckpt-2"))
    log = _train(workdir, data_dir, *flags, "--train_steps=4", two_cpus=True)
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
