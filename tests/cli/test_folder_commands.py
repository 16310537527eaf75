"""Every command on a 4-class folder pair: train, evaluate, predict, export, retrieval and
predict_grid.

One tiny run (4 steps at 32x64) trained by `python -m uada.train` in this process is shared by the
module: its source has index labels (PNG images), its target colour labels (JPEG images, a
training image without a label), its unseen domain raw ids mapped by `label_map` (palette PNGs).
"""

import io
import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    FORWARD_DEPTH,
    float32_error_bound,
    relative_error,
    run_main,
    write_folder_dataset,
)
from PIL import Image
from tensorboard.backend.event_processing import plugin_event_accumulator
from tensorboard.util import tensor_util

from uada.runs import inference
from uada.runs import workdir as workdir_lib

CLASSES = ("floor", "shelf", "person", "cart")
PALETTE = ((40, 40, 40), (0, 120, 0), (220, 20, 60), (0, 0, 230))
RAW_IDS = {0: 11, 1: 12, 2: 24, 3: 26}  # the unseen domain's raw id of each class
FILE_SIZE = (24, 40)  # the files' size; the run's --image_size is 32,64


def _scenes(rng, count):
    """`count` random class maps with blocky regions, and images whose colour follows the class
    (so a few steps learn something)."""
    maps, images = [], []
    for _ in range(count):
        blocks = rng.integers(0, 4, (3, 5))
        label = np.kron(blocks, np.ones((8, 8), np.int64)).astype(np.uint8)
        image = np.asarray(PALETTE, np.float64)[label] + rng.normal(0, 20, (*FILE_SIZE, 3))
        maps.append(label)
        images.append(image.clip(0, 255).astype(np.uint8))
    return maps, images


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("folders")
    rng = np.random.default_rng(0)
    colours = np.asarray(PALETTE, np.uint8)
    maps, images = _scenes(rng, 6)
    source = write_folder_dataset(
        root / "source", classes=CLASSES, palette=PALETTE,
        images={f"s{i}": im for i, im in enumerate(images)},
        labels={f"s{i}": m for i, m in enumerate(maps)},
    )  # fmt: skip
    maps, images = _scenes(rng, 6)
    target = write_folder_dataset(
        root / "target", classes=CLASSES, palette=PALETTE, encoding="rgb", img_suffix=".jpg",
        images={f"cam/t{i}": im for i, im in enumerate(images)},
        labels={f"cam/t{i}": colours[m] for i, m in enumerate(maps) if i != 0},
        splits={"train": ["cam/t0", "cam/t1", "cam/t2", "cam/t3"], "val": ["cam/t4", "cam/t5"]},
    )  # fmt: skip
    maps, images = _scenes(rng, 3)
    unseen = write_folder_dataset(
        root / "unseen", classes=CLASSES, palette=PALETTE,
        images={f"u{i}": im for i, im in enumerate(images)},
        labels={f"u{i}": (np.vectorize(RAW_IDS.get)(m), "P") for i, m in enumerate(maps)},
        label_map={str(raw_id): c for c, raw_id in RAW_IDS.items()},
        splits={"val": ["u0", "u1", "u2"]},
    )  # fmt: skip
    workdir = root / "run"
    result = run_main(
        "uada.train", "--flagfile=experiments/smoke.flags", f"--workdir={workdir}",
        f"--data_dir={root / 'tfds'}", f"--source={source}", f"--target={target}",
        f"--unseen={unseen}", "--train_steps=4", "--image_summary_every=4",
    )  # fmt: skip
    config = workdir_lib.load_config(str(workdir))
    return types.SimpleNamespace(
        root=root, workdir=str(workdir), config=config, stdout=result.stdout,
        domains=(str(source), str(target), str(unseen)),
    )  # fmt: skip


def test_training_evaluates_every_domain_by_the_cards_classes(folder_run):
    with open(os.path.join(folder_run.workdir, "eval_32x64.json")) as f:
        results = json.load(f)
    assert list(results) == list(folder_run.domains)
    for domain, result in results.items():
        assert list(result["per_class"]) == list(CLASSES), domain
    assert [r["num_images"] for r in results.values()] == [2, 2, 3]  # 6 split 3:1; 2; 3
    assert "| domain | images | mIoU | mIoU-4 | floor | shelf | person | cart |" in (
        folder_run.stdout
    )


def test_evaluate_command_on_the_unseen_folder(folder_run, tmp_path):
    unseen = folder_run.domains[2]
    output = tmp_path / "unseen.json"
    run_main("uada.evaluate", f"--workdir={folder_run.workdir}", f"--domains={unseen}",
             f"--output_json={output}")  # fmt: skip
    results = json.loads(output.read_text())
    assert list(results) == [unseen]
    assert list(results[unseen]["per_class"]) == list(CLASSES)
    with open(os.path.join(folder_run.workdir, "eval_32x64.json")) as f:
        assert results[unseen] == json.load(f)[unseen]  # the same checkpoint, the same numbers


def test_predict_colours_with_the_cards_palette_at_the_inputs_size(folder_run, tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "photo.png")
    run_main("uada.predict", f"--workdir={folder_run.workdir}", f"--input={tmp_path / 'photo.png'}",
             f"--output={tmp_path / 'out'}")  # fmt: skip
    label = np.asarray(Image.open(tmp_path / "out/photo.png"))
    colour = np.asarray(Image.open(tmp_path / "out/photo_color.png"))
    assert label.shape == (30, 50) and set(np.unique(label)) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(colour, np.asarray(PALETTE, np.uint8)[label])


def test_the_saved_model_outputs_the_cards_four_classes(folder_run, tmp_path):
    config = folder_run.config
    model, _ = workdir_lib.load_model(config, folder_run.workdir)
    output = inference.export(config, folder_run.workdir, str(tmp_path / "saved"), model=model)
    images = np.random.default_rng(2).uniform(0, 255, (2, 32, 64, 3)).astype(np.float32)
    saved = tf.saved_model.load(output)
    logits = saved.serve(tf.constant(images)).numpy()
    assert logits.shape == (2, 32, 64, 4)
    # The same maths as the Keras model, within float32's bound (test_export.py).
    bound = float32_error_bound(num_terms=9 * 256, depth=FORWARD_DEPTH)
    assert relative_error(logits, model.segmenter(images, training=False).numpy()) <= bound


def test_retrieval_and_predict_grid_on_folder_domains(folder_run, tmp_path):
    run_main("uada.retrieval", f"--workdirs={folder_run.workdir}", f"--output={tmp_path}",
             "--names=run", "--num_vectors=20", "--positions_per_image=4", "--max_k=5")  # fmt: skip
    with open(tmp_path / "domain_accuracy.json") as f:
        assert list(json.load(f)["run"]) == [*CLASSES, "all"]
    grid = tmp_path / "grid.png"
    run_main("uada.predict_grid", f"--source_only_workdir={folder_run.workdir}",
             f"--adapted_workdir={folder_run.workdir}", f"--domain={folder_run.domains[2]}",
             "--indices=0,2", f"--output={grid}")  # fmt: skip
    assert Image.open(grid).format == "PNG"


def test_tensorboard_images_use_the_cards_palette(folder_run):
    events = plugin_event_accumulator.EventAccumulator(
        os.path.join(folder_run.workdir, "train"), size_guidance={"tensors": 0}
    ).Reload()
    allowed = {(0, 0, 0), *PALETTE}  # black: ignored pixels
    for role in ("source", "target"):
        (event, *_) = events.Tensors(f"{role}/image_label_prediction")
        encoded = tensor_util.make_ndarray(event.tensor_proto)[2:]  # width, height, images
        for png in encoded:
            row = np.asarray(Image.open(io.BytesIO(png)))
            for column in (1, 2):  # ground truth, prediction
                part = row[:, column * 64 : (column + 1) * 64].reshape(-1, 3)
                assert {tuple(c) for c in np.unique(part, axis=0)} <= allowed, role


def test_a_target_of_other_classes_stops_training_naming_them(folder_run, tmp_path):
    other = write_folder_dataset(
        tmp_path / "other", classes=("floor", "shelf", "person", "forklift"), palette=PALETTE,
        images={"a": np.zeros((8, 8, 3), np.uint8), "b": np.zeros((8, 8, 3), np.uint8)},
        labels={"a": np.zeros((8, 8), np.uint8), "b": np.zeros((8, 8), np.uint8)},
    )  # fmt: skip
    result = run_main(
        "uada.train", "--flagfile=experiments/smoke.flags", f"--workdir={tmp_path / 'run'}",
        f"--data_dir={folder_run.root / 'tfds'}", f"--source={folder_run.domains[0]}",
        f"--target={other}", "--unseen=", check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"The domain {other} has other classes than the run" in result.stderr
    assert "'forklift'" in result.stderr and "'cart'" in result.stderr
    assert "Traceback" not in result.stderr
