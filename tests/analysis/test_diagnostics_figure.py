"""`plot_adversarial_diagnostics` and `python -m uada.diagnostics` on event files written here
with `tf.summary`, as training writes them."""

import csv

import pytest
import tensorflow as tf
from conftest import run_main
from PIL import Image

from uada.analysis import figures
from uada.runs import workdir as workdir_lib


def _write_run(workdir, scalars):
    """Writes `{tag: {step: value}}` to `WORKDIR/train` as `tf.summary.scalar`s."""
    writer = tf.summary.create_file_writer(workdir_lib.summary_dir(str(workdir)))
    with writer.as_default():
        for tag, series in scalars.items():
            for step, value in series.items():
                tf.summary.scalar(tag, value, step=step)
    writer.close()


RUN_A = {
    "domain_accuracy": {2: 0.5, 4: 0.75},
    "confusion_clipped_fraction": {2: 0.0, 4: 0.25},
    "confusion_gradient_ratio": {2: 0.0, 4: 0.125},
    "loss": {2: 3.0, 4: 2.5},  # not drawn
}
RUN_B = {
    "domain_accuracy": {10: 0.625},
    "confusion_clipped_fraction": {10: 0.5},
    "confusion_gradient_ratio": {10: 2.0},
}


@pytest.fixture
def two_runs(tmp_path):
    _write_run(tmp_path / "a", RUN_A)
    _write_run(tmp_path / "b", RUN_B)
    return [("UADA DAN", str(tmp_path / "a")), ("UADA BN", str(tmp_path / "b"))]


def _expected_rows():
    rows = []
    for metric in figures.ADVERSARIAL_DIAGNOSTICS:
        for name, run in (("UADA DAN", RUN_A), ("UADA BN", RUN_B)):
            rows += [[str(step), name, metric, value] for step, value in run[metric].items()]
    return rows


def _read_csv(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    return rows[0], [[step, run, metric, float(value)] for step, run, metric, value in rows[1:]]


def test_diagnostics_figure_and_csv(two_runs, tmp_path):
    png, csv_path = figures.plot_adversarial_diagnostics(two_runs, str(tmp_path / "d.png"))
    assert csv_path == str(tmp_path / "d.csv")
    header, rows = _read_csv(csv_path)
    assert header == ["step", "run", "metric", "value"]
    assert rows == _expected_rows()  # the logged values are exact in float32
    width, height = Image.open(png).size
    assert width > 2 * height  # three panels side by side


def test_summary_averages_the_last_part_of_training(two_runs):
    text, means = figures.summarize_adversarial_diagnostics(two_runs)
    # Run A logged steps 2 and 4: the last quarter (step > 3) is step 4 alone.
    assert means["UADA DAN"] == {
        "domain_accuracy": 0.75, "confusion_clipped_fraction": 0.25,
        "confusion_gradient_ratio": 0.125,
    }  # fmt: skip
    _, means = figures.summarize_adversarial_diagnostics(two_runs, last_fraction=1.0)
    assert means["UADA DAN"]["domain_accuracy"] == 0.625  # (0.5 + 0.75) / 2
    assert means["UADA BN"]["confusion_gradient_ratio"] == 2.0
    assert "| UADA DAN | 0.75 | 0.25 | 0.125 |" in text
    with pytest.raises(ValueError, match="last_fraction=0"):
        figures.summarize_adversarial_diagnostics(two_runs, last_fraction=0)


def test_a_workdir_without_the_scalars_is_named(two_runs, tmp_path):
    _write_run(tmp_path / "source_only", {"loss": {2: 1.0}, "domain_accuracy": {2: 0.5}})
    runs = [*two_runs, ("source only", str(tmp_path / "source_only"))]
    with pytest.raises(ValueError, match=r"'confusion_clipped_fraction'.*source_only'"):
        figures.plot_adversarial_diagnostics(runs, str(tmp_path / "d.png"))
    with pytest.raises(ValueError, match="workdir='.*never_trained'"):
        figures.plot_adversarial_diagnostics(
            [("x", str(tmp_path / "never_trained"))], str(tmp_path / "d.png")
        )
    assert not (tmp_path / "d.png").exists()


def test_diagnostics_command(two_runs, tmp_path):
    (_, a), (_, b) = two_runs
    output = tmp_path / "figures" / "diagnostics.png"
    output.parent.mkdir()
    result = run_main(
        "uada.diagnostics", f"--workdirs={a},{b}", "--names=UADA DAN,UADA BN", f"--output={output}"
    )
    assert str(output) in result.stdout
    assert "| UADA BN | 0.625 | 0.5 | 2 |" in result.stdout
    assert _read_csv(output.with_suffix(".csv"))[1] == _expected_rows()
    failed = run_main(
        "uada.diagnostics", f"--workdirs={a}", "--names=a,b", f"--output={output}", check=False
    )
    assert failed.returncode != 0 and "--names must give one name per" in failed.stderr


# A self-training run's diagnostics (`SelfTrainingModel.method_metric_names`) as training
# logs them.
SELF_TRAINING_RUN = {
    "pseudo_label_confidence": {25: 0.5, 50: 0.875},
    "pseudo_label_kept_fraction": {25: 0.25, 50: 0.75},
    "seg_loss": {25: 2.0, 50: 1.5},
}


def test_another_methods_diagnostics_are_drawn_and_summarized(tmp_path):
    from uada.methods import SelfTrainingModel

    metrics = ("pseudo_label_confidence", "pseudo_label_kept_fraction")
    assert set(metrics) <= set(SelfTrainingModel.method_metric_names)
    _write_run(tmp_path / "st", SELF_TRAINING_RUN)
    runs = [("self-training DAN", str(tmp_path / "st"))]
    png, csv_path = figures.plot_adversarial_diagnostics(runs, str(tmp_path / "st.png"), metrics)
    expected = [
        [str(step), "self-training DAN", metric, value]
        for metric in metrics
        for step, value in SELF_TRAINING_RUN[metric].items()
    ]
    assert _read_csv(csv_path)[1] == expected
    width, height = Image.open(png).size
    assert height < width < 3 * height  # two panels
    text, means = figures.summarize_adversarial_diagnostics(runs, metrics=metrics)
    assert means == {"self-training DAN": {metrics[0]: 0.875, metrics[1]: 0.75}}
    assert "| run | pseudo_label_confidence | pseudo_label_kept_fraction |" in text
    # UADA's default metrics are not in a self-training run: named, with who logs them.
    with pytest.raises(ValueError, match=r"'domain_accuracy'.*'uada' mode"):
        figures.summarize_adversarial_diagnostics(runs)
    with pytest.raises(ValueError, match="`metrics` must name at least one"):
        figures.summarize_adversarial_diagnostics(runs, metrics=())


def test_diagnostics_command_with_metrics(tmp_path):
    _write_run(tmp_path / "st", SELF_TRAINING_RUN)
    output = tmp_path / "st.png"
    result = run_main(
        "uada.diagnostics", f"--workdirs={tmp_path / 'st'}", f"--output={output}",
        "--metrics=pseudo_label_kept_fraction",
    )  # fmt: skip
    assert "| st | 0.75 |" in result.stdout and output.exists()
    failed = run_main(
        "uada.diagnostics", f"--workdirs={tmp_path / 'st'}", f"--output={output}", "--metrics=",
        check=False,
    )  # fmt: skip
    assert failed.returncode != 0 and "--metrics must name at least one scalar" in failed.stderr
    failed = run_main(
        "uada.diagnostics", f"--workdirs={tmp_path / 'st'}", f"--output={output}", check=False
    )
    assert failed.returncode != 0 and "'domain_accuracy'" in failed.stderr
