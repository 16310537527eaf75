"""Training runs of every mode: the target's labels never change a weight, a killed run resumes
bit for bit (teacher and discriminator included), the methods train under bfloat16 and export a
SavedModel, and their demo runs carry their hyperparameters."""

import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    EXPERIMENTS,
    FORWARD_DEPTH,
    checkpoint_values,
    float32_error_bound,
    parse_train_flags,
    reset_process_state,
)

from uada.data import domains as domains_lib
from uada.methods import METHODS
from uada.names import METHOD_MODES, MODES
from uada.runs import evaluation, inference, table_runs, trainer
from uada.runs import workdir as workdir_lib

# Two deterministic steps of the smoke configuration, a checkpoint after each; no evaluation
# (what is compared is the weights) and no augmentation (its graph is the pipeline's tests').
_FLAGS = (
    "--flagfile=experiments/smoke.flags", "--deterministic", "--train_steps=2",
    "--checkpoint_every=1", "--keep_checkpoints=0", "--image_summary_every=0", "--noaugment",
)  # fmt: skip


def _scrambled_target_labels(monkeypatch, config, seed):
    """Replaces every label of the target's training split with noise drawn from `seed`, where
    the trainer reads it (`uada.data.domains.load`); the pipeline keeps its structure, so a
    checkpointed input position restores across seeds."""
    load = domains_lib.load

    def scrambled(domain, split, config_, **kwargs):
        dataset = load(domain, split, config_, **kwargs)
        if domain.name != config.target or split != domain.train_split:
            return dataset

        def scramble(example):
            noise = tf.random.stateless_uniform(
                tf.shape(example["label"]), [seed, 0], maxval=256, dtype=tf.int32
            )
            return {**example, "label": tf.cast(noise, example["label"].dtype)}

        return dataset.map(scramble)

    monkeypatch.setattr(domains_lib, "load", scrambled)


def _train(config, workdir, seed, monkeypatch):
    with monkeypatch.context() as patch:
        _scrambled_target_labels(patch, config, seed)
        patch.setattr(evaluation, "evaluate", lambda *args, **kwargs: {})
        try:
            keras.utils.clear_session(free_memory=False)  # no full collection: tests/conftest.py
            trainer.train_and_evaluate(config, workdir, verbose=False)
        finally:
            reset_process_state()  # op determinism and the dtype policy


def _killed_after_step_1(workdir, killed):
    """`killed`: the workdir a run killed right after its step-1 checkpoint leaves (its config,
    the step-1 checkpoint and a state file naming it)."""
    os.makedirs(os.path.join(killed, "checkpoints"))
    for name in (workdir_lib.CONFIG_FILE, workdir_lib.FLAGS_FILE):
        shutil.copy(os.path.join(workdir, name), killed)
    source = os.path.join(workdir, "checkpoints")
    for name in os.listdir(source):
        if name.startswith("ckpt-1."):
            shutil.copy(os.path.join(source, name), os.path.join(killed, "checkpoints"))
    with open(os.path.join(killed, "checkpoints", "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "ckpt-1"\n')


@pytest.mark.parametrize("mode", MODES)
def test_target_labels_change_no_weight_and_a_killed_run_resumes_bit_for_bit(
    mode, data_dir, tmp_path, monkeypatch
):
    # The methods train under bfloat16 here (their float32 steps are the other tests').
    extra = ["--mixed_precision=mixed_bfloat16"] if mode in METHODS else []
    config = parse_train_flags(
        *_FLAGS, f"--mode={mode}", f"--data_dir={data_dir}", "--workdir=x", *extra
    )
    # Run 1: two steps, the target's labels drawn from seed 1.
    workdir = str(tmp_path / "run")
    _train(config, workdir, 1, monkeypatch)
    # Run 2: killed after step 1, rerun with the target's labels drawn from seed 2.
    killed = str(tmp_path / "killed")
    _killed_after_step_1(workdir, killed)
    _train(config, killed, 2, monkeypatch)

    expected = checkpoint_values(os.path.join(workdir, "checkpoints", "ckpt-2"))
    actual = checkpoint_values(os.path.join(killed, "checkpoints", "ckpt-2"))
    assert sorted(actual) == sorted(expected)
    different = [key for key in expected if not np.array_equal(expected[key], actual[key])]
    assert not different, different[:10]
    assert expected["model/skipped_steps/.ATTRIBUTES/VARIABLE_VALUE"] == 0
    step_1 = checkpoint_values(os.path.join(workdir, "checkpoints", "ckpt-1"))
    moved = [key for key in expected if not np.array_equal(expected[key], step_1[key])]
    # What the checkpoint holds beside R, S and their optimizer, and that step 2 moved it.
    parts = {"self_training": "model/teacher/", "advent": "domain_optimizer/",
             "adaptsegnet": "domain_optimizer/", "uada": "domain_optimizer/"}  # fmt: skip
    if mode in parts:
        assert any(key.startswith(parts[mode]) for key in moved), sorted(expected)[:20]
    if mode in METHODS:
        _assert_exports(config, workdir, tmp_path / "saved_model")


def _assert_exports(config, workdir, output):
    """The run's SavedModel predicts as its restored Keras model (float32, as exported)."""
    keras.utils.clear_session(free_memory=False)
    model, _ = workdir_lib.load_model(config, workdir)
    inference.export(config, workdir, str(output), model=model)
    images = np.random.default_rng(0).uniform(0, 255, (2, *config.image_size, 3))
    images = images.astype(np.float32)
    loaded = tf.saved_model.load(str(output))  # kept: `serve` needs the object's variables
    got = loaded.serve(tf.constant(images)).numpy()
    want = model.segmenter(images, training=False).numpy()
    # The same ops, which the SavedModel's graph may fuse and sum in another order
    # (tests/cli/test_export.py).
    bound = float32_error_bound(num_terms=9 * 256, depth=FORWARD_DEPTH)
    assert got.shape == (2, *config.image_size, 19)
    assert np.linalg.norm(got - want) <= bound * np.linalg.norm(want)


@pytest.mark.parametrize("norm", ["dan", "batch"])
@pytest.mark.parametrize("mode", METHOD_MODES)
def test_the_demo_run_of_a_method_experiment_carries_its_hyperparameters(mode, norm, tmp_path):
    # The experiment files' values are the defaults: an experiment with other values shows that
    # the demo mapping carries them.
    folder = tmp_path / "experiments"
    folder.mkdir()
    for name in ("base", "demo"):
        shutil.copy(EXPERIMENTS / f"{name}.flags", folder)
    values = {"lambda_ent": 0.003, "lambda_adv": 0.0007, "discriminator_learning_rate": 2.5e-4,
              "teacher_ema": 0.999, "pseudo_label_threshold": 0.9}  # fmt: skip
    own = {name: values[name] for name in METHODS[mode].hyperparameters}
    lines = ["--flagfile=experiments/base.flags", f"--mode={mode}", f"--norm={norm}"]
    (folder / "mine.flags").write_text("\n".join(
        [*lines, *(f"--{name}={value}" for name, value in own.items())]) + "\n")  # fmt: skip
    argv = table_runs.experiment_argv("mine", demo=True, experiments_dir=str(folder))
    demo = table_runs.parse_config(argv, experiments_dir=str(folder))
    assert (demo.mode, demo.norm, demo.source, demo.target) == (
        mode, norm, "demo_source", "demo_target",
    )  # fmt: skip
    assert {name: getattr(demo, name) for name in own} == own
    assert table_runs._demo_workdir_name(demo) == f"{mode}_{norm}"
    # The repository's experiment files of the method parse, with its mode and normalization.
    suffix = "" if norm == "dan" else "_batch"
    real = parse_train_flags(f"--flagfile=experiments/gta2cs_{mode}{suffix}.flags", "--workdir=x")
    assert (real.mode, real.norm) == (mode, norm)
