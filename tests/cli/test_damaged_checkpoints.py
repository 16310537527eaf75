"""A damaged checkpoint costs one checkpoint, not the run: a real smoke run's checkpoint damaged
in each way a disk or a copy damages one (data file truncated, index file missing, a byte
flipped inside a model weight, a byte flipped inside an optimizer slot)."""

import csv
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from conftest import checkpoint_values, run_command
from PIL import Image

from uada.analysis import eval_curve, prediction_grid, retrieval_curve
from uada.runs import evaluation, inference, trainer
from uada.runs import workdir as workdir_lib

DAMAGES = ("truncated_data", "missing_index", "flipped_weight", "flipped_slot")
# The checkpoint stores each variable once, under the first object path that reaches it: the
# model's trainable weights under the optimizer's references to them (`_trainable_variables`),
# the optimizer's momentum slots under its own `_variables`.
WEIGHT = "seg_optimizer/_trainable_variables/"
SLOT = "seg_optimizer/_variables/"


def _copy(uninterrupted_run, tmp_path):
    """A copy of the uninterrupted 8-step run (checkpoints 4, 6, 8) and its checkpoint folder."""
    workdir = str(tmp_path / "run")
    shutil.copytree(uninterrupted_run.workdir, workdir)
    return workdir, os.path.join(workdir, "checkpoints")


def _largest(prefix, start):
    shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    return max((k for k in shapes if k.startswith(start)), key=lambda k: np.prod(shapes[k]))


def _damage(prefix, kind):
    """Damages the checkpoint `prefix`; returns the words its reason must contain."""
    data = prefix + ".data-00000-of-00001"
    if kind == "truncated_data":
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 2)
        return "its data file is truncated (tensor "
    if kind == "missing_index":
        os.remove(prefix + ".index")
        return f"its index file {os.path.basename(prefix)}.index is missing"
    key = _largest(prefix, WEIGHT if kind == "flipped_weight" else SLOT)
    stored = tf.train.load_checkpoint(prefix).get_tensor(key).tobytes()
    with open(data, "rb") as f:
        content = f.read()
    assert content.count(stored) == 1  # the tensor's bytes, found once: the flip lands inside
    position = content.index(stored) + len(stored) // 2
    with open(data, "r+b") as f:
        f.seek(position)
        f.write(bytes([content[position] ^ 0x10]))
    return f"its tensor {key} cannot be read (TensorBundle"


@pytest.mark.parametrize("kind", DAMAGES)
def test_a_damaged_checkpoint_is_named_then_set_aside_by_the_resume(
    uninterrupted_run, tmp_path, kind, caplog
):
    workdir, directory = _copy(uninterrupted_run, tmp_path)
    ckpt8, ckpt6 = os.path.join(directory, "ckpt-8"), os.path.join(directory, "ckpt-6")
    files = sorted(name for name in os.listdir(directory) if name.startswith("ckpt-8."))
    words = _damage(ckpt8, kind)
    reason = workdir_lib.damage(ckpt8)
    assert words in reason
    assert ("Checksum does not match" in reason) == kind.startswith("flipped")
    assert workdir_lib.damage(ckpt6) is None
    if kind.startswith("flipped"):  # the flipped tensor is a weight of the model, or is not
        key = _largest(ckpt6, WEIGHT if kind == "flipped_weight" else SLOT)
        model, _ = workdir_lib.load_model(workdir_lib.load_config(workdir), workdir, ckpt6)
        value = tf.train.load_checkpoint(ckpt6).get_tensor(key)
        is_weight = any(np.array_equal(w.numpy(), value) for w in model.weights)
        assert is_weight == (kind == "flipped_weight")

    # Evaluating the damaged checkpoint (the latest): its name, the reason, the alternatives.
    with pytest.raises(workdir_lib.DamagedCheckpointError) as error:
        evaluation.evaluate(workdir_lib.load_config(workdir), workdir, print_table=False)
    remaining = [os.path.join(directory, n) for n in files if kind != "missing_index" or
                 not n.endswith(".index")]  # fmt: skip
    assert str(error.value).splitlines() == [
        f"The checkpoint {ckpt8} is damaged: {reason}.",
        f"Its files are left as they are: {', '.join(remaining)}.",
        f"Intact checkpoints, newest first: {ckpt6}, {os.path.join(directory, 'ckpt-4')}.",
        "Pass one with --checkpoint, or rerun the run's training command: it sets the damaged "
        "checkpoint aside and resumes from the newest intact one.",
    ]

    # Resuming: one line, the files moved aside with the reason, the state without it.
    assert workdir_lib.resume_checkpoint(workdir) == ckpt6
    aside = os.path.join(directory, "damaged", "ckpt-8")
    assert [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()] == [
        f"Checkpoint {ckpt8} is damaged: {reason}; its files are moved to {aside}. "
        f"Resuming from {ckpt6}."
    ]
    assert sorted(os.listdir(aside)) == [os.path.basename(f) for f in remaining] + ["reason.txt"]
    assert reason in open(os.path.join(aside, "reason.txt")).read()
    assert workdir_lib.all_checkpoints(workdir) == [
        os.path.join(directory, f"ckpt-{step}") for step in (4, 6)
    ]
    assert not [name for name in os.listdir(directory) if name.startswith("ckpt-8")]


def test_the_resume_continues_from_the_previous_checkpoint_bit_identically(
    uninterrupted_run, tmp_path
):
    # The subtlest damage: only an optimizer slot (the model alone would restore). Resumed from
    # ckpt-6, the run ends with the uninterrupted run's ckpt-8, bit for bit: which is where a
    # run resumed from ckpt-6 directly ends (tests/cli/test_train_faults.py).
    workdir, directory = _copy(uninterrupted_run, tmp_path)
    _damage(os.path.join(directory, "ckpt-8"), "flipped_slot")
    restored = []
    original = workdir_lib.restore

    def spy(checkpoint, prefix, **kwargs):
        original(checkpoint, prefix, **kwargs)
        restored.append((os.path.basename(prefix), int(checkpoint.step.numpy())))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(workdir_lib, "restore", spy)
        config = workdir_lib.load_config(workdir).replace(image_summary_every=0)
        trainer.train_and_evaluate(config, workdir)
    assert restored[0] == ("ckpt-6", 6)
    resumed = checkpoint_values(os.path.join(directory, "ckpt-8"))
    assert sorted(resumed) == sorted(uninterrupted_run.final)
    expected = uninterrupted_run.final
    assert not [k for k in expected if not np.array_equal(expected[k], resumed[k])]
    assert os.path.exists(os.path.join(directory, "damaged", "ckpt-8", "ckpt-8.index"))


def test_every_checkpoint_evaluates_the_intact_ones_and_lists_the_damaged(
    uninterrupted_run, tmp_path
):
    workdir, directory = _copy(uninterrupted_run, tmp_path)
    ckpt6 = os.path.join(directory, "ckpt-6")
    words = _damage(ckpt6, "truncated_data")
    rows, step, _ = eval_curve.evaluate_checkpoints(
        workdir_lib.load_config(workdir), workdir, ["demo_target"], print_table=False
    )
    assert [row["step"] for row in rows] == [4, 8] and step == 8
    with open(os.path.join(workdir, "eval_curve.csv")) as f:
        written = list(csv.DictReader(f))
    assert [(int(r["step"]), r["miou"] != "", words in r["damaged"]) for r in written] == [
        (4, True, False), (6, False, True), (8, True, False),
    ]  # fmt: skip
    note = open(os.path.join(workdir, "eval_32x64_select_last.md")).read()
    assert f"Damaged checkpoints, skipped: {ckpt6} (its data file is truncated" in note
    assert os.path.exists(ckpt6 + ".index")  # evaluation moves nothing


def test_commands_name_the_damaged_checkpoint_without_a_traceback(uninterrupted_run, tmp_path):
    # Every checkpoint damaged: training starts nothing and says what it tried.
    workdir, directory = _copy(uninterrupted_run, tmp_path)
    for step, kind in ((4, "missing_index"), (6, "flipped_weight"), (8, "truncated_data")):
        _damage(os.path.join(directory, f"ckpt-{step}"), kind)
    before = sorted(os.listdir(directory))
    summaries = sorted(os.listdir(os.path.join(workdir, "train")))
    config = os.path.join(workdir, "flags.txt")
    train = run_command("uada.train", f"--flagfile={config}", f"--workdir={workdir}", check=False)
    assert train.returncode == 1
    lines = train.stderr.strip().splitlines()
    tried = lines.index(f"No checkpoint of {directory} can be restored; tried, newest first:")
    assert [line.split(":")[0] for line in lines[tried + 1 : tried + 4]] == [
        f"  {directory}/ckpt-{step}" for step in (8, 6, 4)
    ]
    assert lines[tried + 4].startswith("Nothing was moved and nothing was trained.")
    assert "Traceback" not in train.stderr
    assert sorted(os.listdir(directory)) == before
    assert sorted(os.listdir(os.path.join(workdir, "train"))) == summaries

    # Evaluating a damaged --checkpoint: a few lines naming the intact ones (none here).
    ckpt6 = f"{directory}/ckpt-6"
    evaluate = run_command("uada.evaluate", f"--workdir={workdir}", f"--checkpoint={ckpt6}",
                           check=False)  # fmt: skip
    assert evaluate.returncode == 1
    assert evaluate.stderr.strip().splitlines()[-3:] == [
        f"The checkpoint {ckpt6} is damaged: {workdir_lib.damage(ckpt6)}.",
        f"Its files are left as they are: {ckpt6}.data-00000-of-00001, {ckpt6}.index.",
        f"No other checkpoint of {directory} is intact.",
    ]
    assert "Traceback" not in evaluate.stderr


def test_every_user_of_a_checkpoint_names_the_damaged_one_and_writes_nothing(
    uninterrupted_run, tmp_path
):
    workdir, directory = _copy(uninterrupted_run, tmp_path)
    ckpt8 = os.path.join(directory, "ckpt-8")
    _damage(ckpt8, "flipped_weight")
    config = workdir_lib.load_config(workdir)
    image = str(tmp_path / "image.png")
    Image.fromarray(np.zeros((8, 16, 3), np.uint8)).save(image)
    output = str(tmp_path / "out")
    uses = {
        "predict": lambda: inference.predict(config, workdir, [image], output, verbose=0),
        "export": lambda: inference.export(config, workdir, output),
        "retrieval": lambda: retrieval_curve.retrieval([workdir], output, num_vectors=10),
        "predict_grid": lambda: prediction_grid.predict_grid(
            workdir, workdir, "demo_target", [0], os.path.join(output, "grid.png")
        ),
        "notebook": lambda: workdir_lib.load_model(config, workdir),
    }
    for name, use in uses.items():
        with pytest.raises(workdir_lib.DamagedCheckpointError) as error:
            use()
        lines = str(error.value).splitlines()
        assert lines[0].startswith(f"The checkpoint {ckpt8} is damaged: its tensor "), name
        assert lines[2] == f"Intact checkpoints, newest first: {directory}/ckpt-6, " + (
            f"{directory}/ckpt-4."
        ), name
        assert not os.path.exists(output), name
    assert os.path.exists(ckpt8 + ".index")


def test_a_checkpoint_of_another_configuration_is_refused_not_damaged(tmp_path):
    prefix = tf.train.Checkpoint(v=tf.Variable(tf.zeros([2]))).write(str(tmp_path / "ckpt-1"))
    assert workdir_lib.damage(prefix) is None
    with pytest.raises(workdir_lib.CorruptCheckpointError, match="another configuration"):
        workdir_lib.restore(tf.train.Checkpoint(v=tf.Variable(tf.zeros([3]))), prefix)
