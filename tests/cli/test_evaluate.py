"""The evaluate command against cityscapesscripts, and full resolution."""

import json

import numpy as np
import pytest
from conftest import run_main
from test_metrics import cityscapes_scores

from uada.data import domains, pipeline
from uada.runs import evaluation
from uada.runs import workdir as workdir_lib


def _segmenter(smoke_run):
    model = workdir_lib.build_model(smoke_run.config)
    workdir_lib.restore_model(model, smoke_run.workdir)
    return model.segmenter


def test_evaluate_command_equals_cityscapesscripts(smoke_run, tmp_path):
    output = tmp_path / "results.json"
    run_main("uada.evaluate", f"--workdir={smoke_run.workdir}", "--domains=demo_target",
                f"--output_json={output}")  # fmt: skip
    results = json.loads(output.read_text())
    assert list(results) == ["demo_target"]
    assert (tmp_path / "results.md").exists()

    # The same predictions and labels, scored by cityscapesscripts.
    config = smoke_run.config
    domain = domains.get_domain("demo_target", config)
    dataset = pipeline.eval_dataset(
        domains.load(domain, "val", config), batch_size=1, image_size=tuple(config.image_size)
    )
    segmenter = _segmenter(smoke_run)
    labels, predictions = [], []
    for images, label_maps in dataset:
        predictions.append(np.argmax(segmenter(images, training=False).numpy()[0], axis=-1))
        labels.append(label_maps.numpy()[0])
    class_scores, average = cityscapes_scores(labels, predictions, tmp_path)

    result = results["demo_target"]
    assert result["num_images"] == len(labels)
    assert result["miou"] == pytest.approx(average, abs=1e-12)
    for name, iou in result["per_class"].items():
        if np.isnan(class_scores[name]):
            assert iou is None, name
        else:
            assert iou == pytest.approx(class_scores[name], abs=1e-12), name


def test_full_resolution_upsamples_logits_to_the_label_size(smoke_run, tmp_path):
    config = smoke_run.config
    output = str(tmp_path / "full.json")
    common = dict(domains=["demo_unseen"], print_table=False)
    results = evaluation.evaluate(
        config, smoke_run.workdir, resolution="full", output_json=output, **common
    )
    # The demo is generated at the model's size, so both protocols see the same pixels.
    at_train_size = evaluation.evaluate(
        config, smoke_run.workdir, output_json=str(tmp_path / "t.json"), **common
    )
    assert results == at_train_size


def test_mean_over_the_last_checkpoints_equals_averaging_by_hand(smoke_run, tmp_path):
    # The original reported the mean of its last checkpoints' mIoUs; here over the smoke run's
    # last 2 checkpoints, each evaluated on the first 2 validation images of each domain.
    from uada.runs import checkpoint_average

    config, workdir = smoke_run.config, smoke_run.workdir
    prefixes = workdir_lib.all_checkpoints(workdir)[-2:]
    assert len(prefixes) == 2
    averaged = checkpoint_average.evaluate_last_checkpoints(
        config, workdir, ["demo_source", "demo_target"], last=2, max_images=2, print_table=False
    )
    options = {"max_images": 2, "print_table": False}
    by_hand = [
        evaluation.evaluate(config, workdir, ["demo_source", "demo_target"], checkpoint=prefix,
                            output_json=str(tmp_path / f"{i}.json"), **options)
        for i, prefix in enumerate(prefixes)
    ]  # fmt: skip
    assert by_hand[0] != by_hand[1]  # two different checkpoints: the mean is not a copy
    for domain, result in averaged.items():
        assert result["num_images"] == 2
        for key in ("miou", "miou_19"):
            assert result[key] == pytest.approx(np.mean([r[domain][key] for r in by_hand]))
        for name, value in result["per_class"].items():
            values = [r[domain]["per_class"][name] for r in by_hand]
            values = [v for v in values if v is not None]
            assert value == (pytest.approx(np.mean(values)) if values else None), name
    name = evaluation.measured_resolution(config, config.eval_resolution)
    with open(f"{workdir}/eval_{name}_last2.json") as f:
        written = json.load(f)
    assert written["demo_target"]["miou"] == pytest.approx(averaged["demo_target"]["miou"])
    with pytest.raises(ValueError, match="fewer than the 9"):
        checkpoint_average.evaluate_last_checkpoints(config, workdir, last=9)
