"""The evaluate command against cityscapesscripts, full resolution, and the predict command."""

import json
import os

import numpy as np
import pytest
from conftest import run_command
from PIL import Image
from test_metrics import cityscapes_scores

from uada import domains, evaluate, train_lib
from uada.data import pipeline


def _segmenter(smoke_run):
    model = train_lib.build_model(smoke_run.config)
    train_lib.restore_model(model, smoke_run.workdir)
    return model.segmenter


def test_evaluate_command_equals_cityscapesscripts(smoke_run, tmp_path):
    output = tmp_path / "results.json"
    run_command("uada.evaluate", f"--workdir={smoke_run.workdir}", "--domains=demo_target",
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
    results = evaluate.evaluate(
        config, smoke_run.workdir, resolution="full", output_json=output, **common
    )
    # The demo is generated at the model's size, so both protocols see the same pixels.
    at_train_size = evaluate.evaluate(
        config, smoke_run.workdir, output_json=str(tmp_path / "t.json"), **common
    )
    assert results == at_train_size


def test_predict_command_writes_label_maps(smoke_run, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 70, 3), dtype=np.uint8)).save(images / "a.png")
    Image.fromarray(rng.integers(0, 255, (32, 64, 3), dtype=np.uint8)).save(images / "b.jpg")
    output = tmp_path / "out"
    run_command("uada.predict", f"--workdir={smoke_run.workdir}", f"--input={images}",
                f"--output={output}")  # fmt: skip
    assert sorted(os.listdir(output)) == ["a.png", "a_color.png", "b.png", "b_color.png"]
    label_map = np.asarray(Image.open(output / "b.png"))
    assert label_map.shape == (32, 64) and label_map.dtype == np.uint8 and label_map.max() < 19
    assert np.asarray(Image.open(output / "a_color.png")).shape == (32, 64, 3)
    # b.png is at the model's size: the label map is the segmenter's argmax.
    segmenter = _segmenter(smoke_run)
    image = np.asarray(Image.open(images / "b.jpg").convert("RGB"), np.float32)[None]
    np.testing.assert_array_equal(
        label_map, np.argmax(segmenter(image, training=False).numpy()[0], axis=-1)
    )
