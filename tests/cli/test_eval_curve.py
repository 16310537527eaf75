"""Every checkpoint evaluated (`uada.analysis.eval_curve`), label-free selection, and AdaBN at test
time."""

import csv
import json
import os
import types

import numpy as np
import pytest
from absl import flags
from conftest import parse_train_flags, run_main

from uada import flags as uada_flags
from uada.analysis import checkpoint_selection, eval_curve
from uada.data import domains, pipeline
from uada.models import adabn
from uada.runs import evaluation, trainer
from uada.runs import workdir as workdir_lib


@pytest.fixture(scope="module")
def every_checkpoint_run(tmp_path_factory, data_dir):
    """A 4-step smoke run that keeps a checkpoint at every step (`--keep_checkpoints=0`)."""
    workdir = tmp_path_factory.mktemp("every") / "run"
    config = parse_train_flags(
        "--flagfile=experiments/smoke.flags", f"--workdir={workdir}", f"--data_dir={data_dir}",
        "--train_steps=4", "--checkpoint_every=1", "--keep_checkpoints=0", "--eval_max_images=2",
        "--image_summary_every=0",
    )  # fmt: skip
    trainer.train_and_evaluate(config, str(workdir))
    return types.SimpleNamespace(config=config, workdir=str(workdir))


def test_keep_checkpoints_zero_keeps_every_checkpoint(every_checkpoint_run):
    prefixes = workdir_lib.all_checkpoints(every_checkpoint_run.workdir)
    assert [os.path.basename(p) for p in prefixes] == ["ckpt-1", "ckpt-2", "ckpt-3", "ckpt-4"]
    assert prefixes[-1] == workdir_lib.latest_checkpoint(every_checkpoint_run.workdir)


def test_signals_equal_a_hand_computation(every_checkpoint_run):
    config = every_checkpoint_run.config
    model, _ = workdir_lib.load_model(config, every_checkpoint_run.workdir)
    signals = eval_curve.checkpoint_signals(model, config, max_images=2)

    def batches(name):
        domain = domains.get_domain(name, config)
        data = domains.load(domain, "val", config).take(2)
        return pipeline.eval_dataset(data, batch_size=4, image_size=tuple(config.image_size))

    entropies, d_logits = [], {}
    for role, name in (("source", "demo_source"), ("target", "demo_target")):
        d_logits[role] = []
        for images, _ in batches(name):
            z = model.representation(images, training=False)
            d_logits[role].append(model.domain_classifier(z, training=False).numpy().ravel())
            if role == "target":
                logits = model.segmenter(images, training=False).numpy().astype(np.float64)
                p = np.exp(logits - logits.max(-1, keepdims=True))
                p /= p.sum(-1, keepdims=True)
                entropies.append(-np.sum(p * np.log(p), axis=-1).ravel())
    source, target = np.concatenate(d_logits["source"]), np.concatenate(d_logits["target"])
    accuracy = (np.mean(source <= 0) + np.mean(target > 0)) / 2
    assert signals["target_entropy"] == pytest.approx(np.concatenate(entropies).mean(), rel=1e-5)
    assert signals["domain_accuracy"] == pytest.approx(accuracy)
    assert 0.0 <= signals["retrieval_alignment"] <= 2.0


def test_curve_of_every_checkpoint_reuses_finished_evaluations(every_checkpoint_run, monkeypatch):
    config, workdir = every_checkpoint_run.config, every_checkpoint_run.workdir
    rows, step, selected = eval_curve.evaluate_checkpoints(
        config, workdir, ["demo_target"], select="target_entropy", print_table=False
    )
    with open(os.path.join(workdir, "eval_curve.csv")) as f:
        written = list(csv.DictReader(f))
    assert list(written[0]) == list(checkpoint_selection.CURVE_COLUMNS)
    assert [int(r["step"]) for r in written] == [1, 2, 3, 4]
    assert os.path.getsize(os.path.join(workdir, "eval_curve.png")) > 1000
    # The selected checkpoint has the lowest target entropy, and its reported numbers are those
    # of that checkpoint evaluated on its own.
    entropy = {row["step"]: row["target_entropy"] for row in rows}
    assert step == min(entropy, key=entropy.get)
    model, _ = workdir_lib.load_model(
        config, workdir, os.path.join(workdir, f"checkpoints/ckpt-{step}")
    )
    assert selected == evaluation.evaluate_model(model, config, ["demo_target"])
    reported = json.loads(
        open(os.path.join(workdir, "eval_32x64_select_target_entropy.json")).read()
    )
    assert reported == selected
    md = open(os.path.join(workdir, "eval_32x64_select_target_entropy.md")).read()
    assert f"Reporting checkpoint ckpt-{step} (step {step}): selected by target_entropy" in md

    # A rerun computes nothing already finished, also from the cache of a workdir written when it
    # was named by the --resolution setting; a new domain is evaluated alone.
    cache = os.path.join(workdir, "eval_checkpoints")
    os.rename(
        os.path.join(cache, "32x64_adapt-none_images-2"),
        os.path.join(cache, "384x768_adapt-none_images-2"),
    )
    calls = []

    def spy(model, config, domains, **kwargs):
        calls.append(list(domains))
        return original(model, config, domains, **kwargs)

    original = evaluation.evaluate_model
    monkeypatch.setattr(evaluation, "evaluate_model", spy)
    monkeypatch.setattr(eval_curve, "checkpoint_signals", lambda *a, **k: pytest.fail("recomputed"))
    again, _, _ = eval_curve.evaluate_checkpoints(
        config, workdir, ["demo_target"], print_table=False
    )
    assert again == rows and calls == []
    eval_curve.evaluate_checkpoints(
        config, workdir, ["demo_target", "demo_unseen"], print_table=False
    )
    assert calls == [["demo_unseen"]] * 4
    # A checkpoint written again (newer than its cached results) is evaluated again.
    monkeypatch.undo()
    monkeypatch.setattr(evaluation, "evaluate_model", spy)
    cached = os.path.join(workdir, "eval_checkpoints", "384x768_adapt-none_images-2", "ckpt-2.json")
    os.utime(cached, (0, 0))  # older than the checkpoint's files
    calls.clear()
    eval_curve.evaluate_checkpoints(config, workdir, ["demo_target"], print_table=False)
    assert calls == [["demo_target"]]


def test_selection_errors_name_the_flag(every_checkpoint_run):
    config = every_checkpoint_run.config.replace(mode="source_only")
    with pytest.raises(ValueError, match=r"--select=domain_accuracy .* mode 'source_only'"):
        eval_curve.evaluate_checkpoints(
            config, every_checkpoint_run.workdir, select="domain_accuracy"
        )
    flag_values = flags.FlagValues()
    uada_flags.define_evaluate_flags(flag_values)
    argv = ["uada.evaluate", f"--workdir={every_checkpoint_run.workdir}"]
    with pytest.raises(flags.IllegalFlagValueError, match="needs --checkpoints=all"):
        flag_values([*argv, "--select=target_entropy"])
    flag_values = flags.FlagValues()
    uada_flags.define_evaluate_flags(flag_values)
    with pytest.raises(flags.IllegalFlagValueError, match="neither --checkpoint"):
        flag_values([*argv, "--checkpoints=all", "--checkpoint=x/ckpt-1"])


def test_evaluate_command_reports_the_selected_checkpoint(every_checkpoint_run):
    result = run_main(
        "uada.evaluate", f"--workdir={every_checkpoint_run.workdir}", "--checkpoints=all",
        "--select=retrieval_alignment", "--domains=demo_target",
    )  # fmt: skip
    assert "selected by retrieval_alignment (highest, " in result.stdout
    assert "among 4 checkpoints" in result.stdout


def test_adabn_evaluation_uses_each_domains_images_and_restores_the_model(smoke_run, tmp_path):
    config = smoke_run.config
    model, _ = workdir_lib.load_model(config, smoke_run.workdir)
    before = [w.copy() for w in model.segmenter.get_weights()]
    results = evaluation.evaluate_model(
        model, config, ["demo_target", "demo_unseen"], adapt_statistics="target"
    )
    for after, original in zip(model.segmenter.get_weights(), before, strict=True):
        np.testing.assert_array_equal(after, original)  # the model's own statistics are back
    assert results["demo_target"]["statistics"] == "train"
    assert results["demo_unseen"]["statistics"] == "val"  # no training split

    # By hand: adapt on the target's training images, then evaluate without adaptation.
    target = domains.get_domain("demo_target", config)
    images = pipeline.eval_dataset(
        domains.load(target, "train", config), batch_size=3, image_size=tuple(config.image_size)
    )
    adapted = adabn.adapt_statistics(model.segmenter, images)
    assert len(adapted) == 19  # resnet_tiny's 17, R's extension and S's DAN
    plain = evaluation.evaluate_model(model, config, ["demo_target"])["demo_target"]
    assert plain["miou"] == pytest.approx(results["demo_target"]["miou"], abs=1e-6)

    output = tmp_path / "adabn.json"
    result = run_main(
        "uada.evaluate", f"--workdir={smoke_run.workdir}", "--adapt_statistics=target",
        "--domains=demo_unseen", f"--output_json={output}",
    )  # fmt: skip
    assert "demo_unseen has no training images" in result.stdout
    assert json.loads(output.read_text())["demo_unseen"]["statistics"] == "val"


def test_selection_report_of_a_run(every_checkpoint_run, tmp_path):
    config, workdir = every_checkpoint_run.config, every_checkpoint_run.workdir
    rows, _, _ = eval_curve.evaluate_checkpoints(
        config, workdir, ["demo_target"], print_table=False
    )
    text = checkpoint_selection.workdirs_report([workdir], names=["smoke"])
    miou = {row["step"]: 100 * row["miou"] for row in rows}
    for signal in checkpoint_selection.SIGNALS:
        assert f"| smoke | {signal} | 4 | " in text
    assert f"| {miou[4]:.1f} (4) |" in text  # the last checkpoint's target mIoU
    with pytest.raises(FileNotFoundError, match="--checkpoints=all"):
        checkpoint_selection.workdirs_report([str(tmp_path)])
