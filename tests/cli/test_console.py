"""What a user reads in the console (`uada.console`), through the command line: uada's own lines
by default, every library's records with `--verbosity=1`, a missing dataset in a few lines.

Each command runs once per verbosity, in a fresh process without `TF_CPP_MIN_LOG_LEVEL` (as a
user's shell has it), and the runs are shared by the asserts.
"""

import os
import re
import subprocess
import sys

import pytest
from conftest import HANG_GUARD_SECONDS, REPO

from uada import console

# A log record in absl's or TensorFlow's C++ format: `I1204 16:05:36.838377 ... file.py:128] ...`
# or `I0000 00:00:1796400331.177087 ... port.cc:153] ...`.
_RECORD = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\]", re.MULTILINE)
# What TensorFlow's C++ start-up and TFDS print besides records.
_LIBRARY_LINES = (
    "absl::InitializeLog",
    "oneDNN",
    "cuda",
    "cpu_feature_guard",
    "Downloading and preparing dataset",
    "Shuffling",
    "Generating splits",
)


def _run(module, *argv):
    """`python -m <module> argv...` with the user's environment (no TF_CPP_MIN_LOG_LEVEL); the
    carriage returns of the progress bars become line ends."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", module, *argv], cwd=REPO, env={**env, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True, text=True, timeout=HANG_GUARD_SECONDS,
    )  # fmt: skip
    result.stdout, result.stderr = (
        text.replace("\r", "\n") for text in (result.stdout, result.stderr)
    )
    return result


def _assert_quiet(result):
    """Exit status 0; neither stream holds a library's record or start-up line."""
    assert result.returncode == 0, result.stderr[-4000:]
    for text in (result.stdout, result.stderr):
        assert not _RECORD.search(text), text[-4000:]
        for line in _LIBRARY_LINES:
            assert line not in text, (line, text[-4000:])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The smoke training (its own data directory, so that it prepares the demo domains) at the
    default verbosity, resumed for one step with --verbosity=1; evaluate and predict on its
    workdir at both verbosities."""
    root = tmp_path_factory.mktemp("console")
    workdir, images = root / "run", root / "images"
    train = ("--flagfile=experiments/smoke.flags", f"--workdir={workdir}",
             f"--data_dir={root / 'data'}", "--eval_max_images=1")  # fmt: skip
    runs = {"train": _run("uada.train", *train, "--train_steps=2")}
    runs["train_verbose"] = _run("uada.train", *train, "--train_steps=3", "--verbosity=1")
    evaluate = ("--workdir", str(workdir), "--domains=demo_target", "--max_images=1")
    runs["evaluate"] = _run("uada.evaluate", *evaluate)
    runs["evaluate_verbose"] = _run("uada.evaluate", *evaluate, "-v", "1")
    images.mkdir()
    (images / "a.png").write_bytes(next((root / "data").rglob("*leftImg8bit.png")).read_bytes())
    predict = (f"--workdir={workdir}", f"--input={images}")
    runs["predict"] = _run("uada.predict", *predict, f"--output={root / 'out'}")
    runs["predict_verbose"] = _run(
        "uada.predict", *predict, f"--output={root / 'out_verbose'}", "--verbosity=1"
    )
    return {"workdir": str(workdir), **runs}


def test_training_prints_only_uadas_lines(runs):
    result, workdir = runs["train"], runs["workdir"]
    _assert_quiet(result)
    out = result.stdout
    assert "Generating the demo domains (seed 0, 32x64)" in out
    assert re.search(
        r"^Prepared demo_source \(gta5 layout\): 12 images, 9 train / 3 val ", out, re.M
    )
    assert re.search(
        r"^Prepared demo_target \(cityscapes layout\): 12 images, 8 train / 4 val", out, re.M
    )
    assert (
        "Training uada, dan normalization, resnet_tiny backbone: 2 steps (2 per epoch), "
        f"1 replica(s), float32 precision, workdir {workdir}" in out
    )
    assert "2/2" in out and "step - seg_loss:" in out  # Keras' progress bar
    assert re.search(r"^Saved checkpoint ckpt-2$", out, re.M)
    # The evaluation is named by what it measured: the model's input size 32x64.
    title = "IoU (%) at 32x64: images and labels at the model's input size, written to"
    assert f"{title} {workdir}/eval_32x64.json" in out
    assert "| demo_target | 1 |" in out
    closing = out.split("| demo_unseen |")[1].splitlines()[2:]
    assert closing == [
        f"Workdir:     {workdir}",
        f"Checkpoints: {workdir}/checkpoints",
        f"TensorBoard: {workdir}/train",
        "Next:",
        f"  tensorboard --logdir {workdir}",
        f"  python -m uada.evaluate --workdir={workdir}",
        f"  python -m uada.predict --workdir={workdir} --input=IMAGES "
        f"--output={workdir}/predictions",
        f"  python -m uada.export --workdir={workdir} --output={workdir}/saved_model",
    ]
    assert result.stderr == ""


@pytest.mark.parametrize(
    "command, records",
    [
        ("train", r"(dataset_info|dataset_builder|reader|trainer)\.py"),
        ("evaluate", r"(dataset_info|dataset_builder|reader|evaluation)\.py"),
        ("predict", r"port\.cc"),  # predict reads no dataset
    ],
)
def test_verbosity_brings_back_every_librarys_records(runs, command, records):
    result = runs[f"{command}_verbose"]
    assert result.returncode == 0, result.stderr[-4000:]
    assert "oneDNN custom operations are on" in result.stderr  # TensorFlow's C++ start-up
    assert re.search(rf"^I\d{{4}} .* {records}:\d+\]", result.stderr, re.M), result.stderr[-4000:]


def test_evaluate_and_predict_print_only_uadas_lines(runs):
    workdir = runs["workdir"]
    evaluate, predict = runs["evaluate"], runs["predict"]
    _assert_quiet(evaluate)
    assert evaluate.stdout.startswith(f"Evaluating {workdir}/checkpoints/ckpt-3\n")
    assert "IoU (%) at 32x64" in evaluate.stdout and "| demo_target | 1 |" in evaluate.stdout
    assert evaluate.stderr == ""
    _assert_quiet(predict)
    assert "1/1" in predict.stdout and "Wrote 1 label maps" in predict.stdout
    assert predict.stderr == ""


def test_a_missing_dataset_is_a_few_lines_without_traceback(tmp_path):
    result = _run(
        "uada.train", "--flagfile=experiments/gta2cs.flags", f"--data_dir={tmp_path}",
        f"--workdir={tmp_path / 'run'}",
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "AssertionError" not in result.stderr
    lines = result.stderr.strip().splitlines()
    manual = tmp_path / "downloads" / "manual" / "gta5"
    assert lines[0] == f"Cannot prepare the domain 'gta5' from {manual}: no files there."
    assert lines[1].startswith("Download GTA5 from https://download.visinf.tu-darmstadt.de/")
    assert lines[-1].startswith("Then run the command again")
    assert len(lines) <= 8
    assert result.stdout.strip() == ""


@pytest.mark.parametrize(
    "argv, verbosity",
    [
        (["x"], None),
        (["x", "--verbosity=1"], 1),
        (["x", "--verbosity", "2"], 2),
        (["x", "-v", "1", "--workdir=w"], 1),
        (["x", "--v=0"], 0),
        (["x", "-v=-1"], -1),
        (["x", "--verbosity=1", "--verbosity=0"], 0),  # the last one counts, as for absl
        (["x", "--", "--verbosity=1"], None),
        (["x", "--verbosity=abc"], None),  # absl reports it
        (["x", "--vmodule=x=1", "--validate"], None),
    ],
)
def test_verbosity_is_read_from_the_command_line(argv, verbosity):
    assert console.verbosity_from(argv) == verbosity


def test_the_start_up_is_quiet_unless_asked():
    assert console.is_quiet(["x"], {})
    assert console.is_quiet(["x", "--verbosity=0"], {"TF_CPP_MIN_LOG_LEVEL": "2"})
    assert not console.is_quiet(["x", "-v", "1"], {})
    assert not console.is_quiet(["x"], {"TF_CPP_MIN_LOG_LEVEL": "0"})  # the user's choice
