"""Folder datasets: cards, the folder builder's labels pixel by pixel, and every bad card's message.

Each test writes a folder dataset as a user would (`conftest.write_folder_dataset`: PNG or JPEG
images, greyscale, 16-bit, palette or colour label PNGs, split files naming stems in subfolders)
and compares what preparation stored with what it wrote, mapped by hand.
"""

import json
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import run_main, write_folder_dataset
from PIL import Image

from uada import config as config_lib
from uada.data import builders, domains, folder_card, labels
from uada.data.builders import common
from uada.data.builders.folder import folder as folder_builder
from uada.data.folder_card import DatasetCardError

CLASSES = ("floor", "wall", "person", "cart")
PALETTE = ((0, 0, 0), (128, 128, 128), (220, 20, 60), (0, 0, 142))
SIZE = (12, 16)


def _image(rng, size=SIZE):
    return rng.integers(0, 256, (*size, 3), dtype=np.uint8)


def _prepare(folder, data_dir, size=None):
    """Prepares a folder dataset; returns the builder and `{split: {file name: example}}`."""
    card = folder_card.read_card(folder)
    builder = builders.prepare(
        "folder", data_dir=str(data_dir), manual_dir=str(folder),
        config=folder_builder.builder_config(card, size),
    )  # fmt: skip
    examples = {
        split: {e["file_name"].decode(): e for e in tfds.as_numpy(builder.as_dataset(split=split))}
        for split in builder.info.splits
    }
    return builder, examples


def _by_hand(raw, mapping):
    """Each value through `mapping` (a dict), 255 for the others."""
    expected = np.full(raw.shape[:2], 255, np.uint8)
    for value, index in mapping.items():
        expected[raw == value] = index
    return expected


# --- The three encodings, pixel by pixel ---


def test_index_labels_in_subfolders_prepare_to_the_values_written(tmp_path):
    rng = np.random.default_rng(0)
    stems = ["site_a/f0", "site_a/f1", "site_b/f2", "site_b/f3", "site_b/f4"]
    images = {stem: _image(rng) for stem in stems}
    # Class indices, 255 (ignored) and 7, which the card does not know.
    written = {s: rng.choice([0, 1, 2, 3, 255, 7], SIZE).astype(np.uint8) for s in stems[:4]}
    folder = write_folder_dataset(
        tmp_path / "cameras", classes=CLASSES, palette=PALETTE, images=images, labels=written,
        splits={"train": ["site_a/f0", "site_a/f1", "site_b/f2", "site_b/f4"],
                "val": ["site_b/f3"]},
    )  # fmt: skip

    builder, examples = _prepare(folder, tmp_path / "tfds")

    # f4 has no label: a training image without one is kept apart, every pixel ignored.
    assert {split: sorted(e) for split, e in examples.items()} == {
        "train": ["f0.png", "f1.png", "f2.png"], "unlabelled": ["f4.png"], "val": ["f3.png"],
    }  # fmt: skip
    known = {v: v for v in (0, 1, 2, 3)}
    for split in ("train", "val"):
        for name, example in examples[split].items():
            stem = next(s for s in stems if s.endswith(name[:-4]))
            np.testing.assert_array_equal(example["image"], images[stem])
            np.testing.assert_array_equal(example["label"][..., 0], _by_hand(written[stem], known))
    np.testing.assert_array_equal(examples["unlabelled"]["f4.png"]["label"], 255)
    np.testing.assert_array_equal(examples["unlabelled"]["f4.png"]["image"], images["site_b/f4"])
    # The unknown value is counted per split, in pixels and files.
    sevens = {split: sum(int(np.sum(written[s] == 7)) for s in split_stems)
              for split, split_stems in (("train", stems[:3]), ("val", stems[3:4]))}  # fmt: skip
    assert builder.report.unknown == {split: {7: n} for split, n in sevens.items()}
    assert builder.report.unknown_files["train"][7] == 3
    assert "train: ignored" in builder.report.summary(builder.name)

    # At the run's image size: images bilinear, labels nearest, as every builder.
    _, resized = _prepare(folder, tmp_path / "tfds", size=(6, 8))
    label = resized["val"]["f3.png"]["label"][..., 0]
    np.testing.assert_array_equal(
        label, common.resize_label(_by_hand(written["site_b/f3"], known), (6, 8))
    )
    assert resized["val"]["f3.png"]["image"].shape == (6, 8, 3)


def test_rgb_labels_of_jpeg_images_map_palette_colours_and_label_map(tmp_path):
    rng = np.random.default_rng(1)
    colours = np.array([*PALETTE, (255, 255, 255)], np.uint8)  # white: void, ignored by label_map
    stems = [f"frame{i}" for i in range(4)]
    indices = {stem: rng.integers(0, 5, SIZE) for stem in stems}
    images = {stem: _image(rng) for stem in stems}
    folder = write_folder_dataset(
        tmp_path / "camera", classes=CLASSES, palette=PALETTE, images=images,
        labels={stem: colours[i] for stem, i in indices.items()}, encoding="rgb",
        img_suffix=".jpg", label_map={"255,255,255": 255},
    )  # fmt: skip

    _, examples = _prepare(folder, tmp_path / "tfds")

    # No split files: 4 images split 3:1 by the MD5 of their paths.
    assert {split: len(e) for split, e in examples.items()} == {"train": 3, "val": 1}
    for split_examples in examples.values():
        for name, example in split_examples.items():
            stem = name[:-4]
            jpeg = np.asarray(Image.open(folder / "images" / name).convert("RGB"))
            np.testing.assert_array_equal(example["image"], jpeg)  # decoded once, stored lossless
            np.testing.assert_array_equal(
                example["label"][..., 0], _by_hand(indices[stem], {0: 0, 1: 1, 2: 2, 3: 3})
            )


def test_raw_ids_of_palette_pngs_through_label_map(tmp_path):
    rng = np.random.default_rng(2)
    # Raw ids as a dataset's own labels: 7, 8, 24, 26 mapped; 99 mapped to ignored; 2 is a class
    # index the map does not name (kept, as in mmsegmentation); 40 and 41 are unknown.
    raw = {f"f{i}": rng.choice([7, 8, 24, 26, 99, 2, 40, 41], SIZE).astype(np.uint8)
           for i in range(2)}  # fmt: skip
    label_map = {"7": 0, "8": 1, "24": 2, "26": 3, "99": 255}
    folder = write_folder_dataset(
        tmp_path / "unseen", classes=CLASSES, palette=PALETTE,
        images={stem: _image(rng) for stem in raw}, labels={s: (r, "P") for s, r in raw.items()},
        label_map=label_map, splits={"val": list(raw)},
    )  # fmt: skip
    assert Image.open(folder / "labels/f0.png").mode == "P"

    builder, examples = _prepare(folder, tmp_path / "tfds")

    by_hand = {7: 0, 8: 1, 24: 2, 26: 3, 2: 2}
    for stem, values in raw.items():
        np.testing.assert_array_equal(
            examples["val"][f"{stem}.png"]["label"][..., 0], _by_hand(values, by_hand)
        )
    unknown = {v: int(sum(np.sum(r == v) for r in raw.values())) for v in (40, 41)}
    assert builder.report.unknown == {"val": unknown}


def test_reduce_zero_label_of_16_bit_labels_then_label_map(tmp_path):
    rng = np.random.default_rng(3)
    # mmsegmentation's order: 0 -> ignored, v -> v - 1, then label_map (its keys are reduced
    # values: 10 -> 9 -> class 1); 255 stays ignored; 301 -> 300 is unknown.
    raw = {"a/x": rng.choice([0, 1, 2, 3, 4, 10, 255, 301], SIZE).astype(np.uint16),
           "b/y": rng.choice([0, 1, 2, 3, 4, 10, 255, 301], SIZE).astype(np.uint16)}  # fmt: skip
    folder = write_folder_dataset(
        tmp_path / "ade", classes=CLASSES, palette=PALETTE,
        images={stem: _image(rng) for stem in raw}, labels=raw, reduce_zero_label=True,
        label_map={"9": 1},
    )  # fmt: skip
    assert Image.open(folder / "labels/a/x.png").mode.startswith("I")

    builder, examples = _prepare(folder, tmp_path / "tfds")

    by_hand = {1: 0, 2: 1, 3: 2, 4: 3, 10: 1}
    found = {name: e for split in examples.values() for name, e in split.items()}
    for stem, values in raw.items():
        name = stem.split("/")[1] + ".png"
        np.testing.assert_array_equal(found[name]["label"][..., 0], _by_hand(values, by_hand))
    counted = sum(sum(c.values()) for c in builder.report.unknown.values())
    assert counted == sum(int(np.sum(r == 301)) for r in raw.values())
    assert all(set(c) == {301} for c in builder.report.unknown.values())  # as the files hold it


@pytest.fixture
def fixture_folder(fixtures_dir, tmp_path):
    """The real Cityscapes frame of the shared fixtures as a folder dataset of train ids."""
    frame = "frankfurt/frankfurt_000000_000294"
    folder = tmp_path / "cityscapes_folder"
    for kind, suffix in (("leftImg8bit", "_leftImg8bit.png"),
                         ("gtFine", "_gtFine_labelTrainIds.png")):  # fmt: skip
        target = folder / kind / "val" / f"{frame}{suffix}"
        target.parent.mkdir(parents=True)
        target.symlink_to(fixtures_dir / "cityscapes" / kind / "val" / f"{frame}{suffix}")
    (folder / "val.txt").write_text(frame + "\n")
    card = {
        "classes": list(labels.CLASS_NAMES), "palette": labels.PALETTE.tolist(),
        "img_dir": "leftImg8bit/val", "ann_dir": "gtFine/val",
        "img_suffix": "_leftImg8bit.png", "seg_map_suffix": "_gtFine_labelTrainIds.png",
        "label_encoding": "index", "splits": {"val": "val.txt"},
    }  # fmt: skip
    (folder / "dataset.json").write_text(json.dumps(card))
    return folder


def test_real_cityscapes_train_ids_as_a_folder_dataset(fixture_folder, fixtures_dir, tmp_path):
    # mmsegmentation's Cityscapes layout (its labelTrainIds files) read as they are.
    _, examples = _prepare(fixture_folder, tmp_path / "tfds")
    name = "frankfurt_000000_000294_leftImg8bit.png"
    expected = np.asarray(
        Image.open(fixtures_dir / "cityscapes/gtFine/val/frankfurt" /
                   "frankfurt_000000_000294_gtFine_labelTrainIds.png")
    )  # fmt: skip
    np.testing.assert_array_equal(examples["val"][name]["label"][..., 0], expected)
    # A built-in run (Cityscapes classes) evaluates such a folder as an unseen domain.
    config = config_lib.Config(data_dir=str(tmp_path / "tfds"))
    assert domains.get_domain(str(fixture_folder), config).card is not None


def test_real_gta5_palette_labels_through_a_label_map_equal_the_gta5_builder(
    fixtures_dir, tmp_path
):
    folder = tmp_path / "gta5_folder"
    for kind in ("images", "labels"):
        (folder / kind).mkdir(parents=True)
        (folder / kind / "00001.png").symlink_to(fixtures_dir / "gta5" / kind / "00001.png")
    (folder / "val.txt").write_text("00001\n")
    table = labels.lookup_table("gta5")
    card = {
        "classes": list(labels.CLASS_NAMES), "palette": labels.PALETTE.tolist(),
        "img_dir": "images", "ann_dir": "labels", "img_suffix": ".png", "seg_map_suffix": ".png",
        "label_encoding": "index", "splits": {"val": "val.txt"},
        # Every Cityscapes label id: the unmapped ones to 255, so none passes as a class index.
        "label_map": {str(i): int(table[i]) for i in range(34)},
    }  # fmt: skip
    (folder / "dataset.json").write_text(json.dumps(card))

    _, examples = _prepare(folder, tmp_path / "tfds")

    raw = common.decode_label_indices((folder / "labels/00001.png").read_bytes(), "00001.png")
    np.testing.assert_array_equal(
        examples["val"]["00001.png"]["label"][..., 0], common.to_train_ids(raw, table)
    )


# --- Reuse, classes, the run's domains ---


def test_a_prepared_folder_is_reused_until_its_card_or_the_size_changes(tmp_path):
    rng = np.random.default_rng(4)
    stems = ["a", "b"]
    folder = write_folder_dataset(
        tmp_path / "d", classes=CLASSES, palette=PALETTE,
        images={s: _image(rng) for s in stems}, labels={s: np.zeros(SIZE, np.uint8) for s in stems},
    )  # fmt: skip
    card = folder_card.read_card(folder)
    config = folder_builder.builder_config(card, (8, 8))
    _prepare(folder, tmp_path / "tfds", size=(8, 8))
    assert builders.builder("folder", data_dir=str(tmp_path / "tfds"), config=config).is_prepared()
    assert folder_builder.builder_config(folder_card.read_card(folder), (8, 8)).name == config.name

    fields = json.loads((folder / "dataset.json").read_text())
    (folder / "dataset.json").write_text(json.dumps({**fields, "label_map": {"5": 255}}))
    changed = folder_builder.builder_config(folder_card.read_card(folder), (8, 8))
    other_size = folder_builder.builder_config(card, (16, 16))
    assert len({config.name, changed.name, other_size.name}) == 3
    assert not builders.builder("folder", data_dir=str(tmp_path / "tfds"),
                                config=changed).is_prepared()  # fmt: skip


def _pair(tmp_path, target_classes=CLASSES):
    rng = np.random.default_rng(5)
    made = {}
    for name, classes in (("source", CLASSES), ("target", target_classes)):
        made[name] = write_folder_dataset(
            tmp_path / name, classes=classes, palette=PALETTE[: len(classes)],
            images={s: _image(rng) for s in ("a", "b", "c")},
            labels={s: np.zeros(SIZE, np.uint8) for s in ("a", "b")},  # c: no label
            splits={"train": ["a", "c"], "val": ["b"]},
        )  # fmt: skip
    config = config_lib.Config(
        source=str(made["source"]), target=str(made["target"]), unseen=(),
        data_dir=str(tmp_path / "tfds"), image_size=(8, 8),
    )  # fmt: skip
    return config


def test_the_run_predicts_the_source_cards_classes_and_a_target_trains_on_unlabelled_images(
    tmp_path,
):
    config = _pair(tmp_path)
    assert domains.run_classes(config) == labels.Classes(CLASSES, PALETTE)
    assert domains.run_classes(config_lib.Config()) == labels.CITYSCAPES  # built-in runs: 19
    source = domains.get_domain(config.source, config)
    target = domains.get_domain(config.target, config)
    assert domains.training_split(source, config) == "train"
    assert domains.training_split(target, config, labelled=False) == "train+unlabelled"
    assert domains.num_examples(target, "train+unlabelled", config) == 2


def test_a_domain_with_other_classes_is_refused_naming_both(tmp_path):
    config = _pair(tmp_path, target_classes=("floor", "wall", "person", "forklift"))
    with pytest.raises(DatasetCardError, match=r"'forklift'.*'cart'") as error:
        domains.get_domain(config.target, config)
    assert str(tmp_path / "target" / "dataset.json") in str(error.value)
    with pytest.raises(DatasetCardError, match=r"cityscapes has other classes.*'road'"):
        domains.get_domain("cityscapes", config)
    with pytest.raises(DatasetCardError, match=r"Unknown domain: .*domain='cityscape'"):
        domains.get_domain("cityscape", config)


# --- Bad cards: one message naming the file and the field ---


@pytest.fixture
def card_folder(tmp_path):
    """A valid 4-class folder dataset with split files; tests edit its card."""
    rng = np.random.default_rng(6)
    return write_folder_dataset(
        tmp_path / "d", classes=CLASSES, palette=PALETTE,
        images={s: _image(rng) for s in ("a", "b")},
        labels={s: np.zeros(SIZE, np.uint8) for s in ("a", "b")},
        splits={"train": ["a"], "val": ["b"]},
    )  # fmt: skip


def _edit(folder, **changes):
    fields = json.loads((folder / "dataset.json").read_text())
    fields.update(changes)
    for name, value in changes.items():
        if value is None:
            del fields[name]
    (folder / "dataset.json").write_text(json.dumps(fields))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"palette": None}, r"missing field `palette`"),
        ({"label_encoding": "ids"}, r"`label_encoding` must be one of \['index', 'rgb'\].*ids"),
        ({"palette": [[0, 0, 0]] * 3}, r"`palette` must have one colour per class: 3 colours"),
        ({"palette": [[0, 0, 0], [1, 1, 1], [2, 2, 2], [300, 0, 0]]}, r"`palette\[3\]`"),
        ({"label_maps": {}}, r"unknown field `label_maps`"),
        ({"label_map": {"7": 9}}, r"`label_map\['7'\]` must be a class index 0..3 or 255"),
        ({"label_map": {"x": 1}}, r"`label_map` has raw label values as keys"),
        ({"classes": ["a", "a", "b", "c"]}, r"`classes` must not repeat a name \(a\)"),
        ({"seg_map_suffix": ".jpg"}, r"`seg_map_suffix` must name lossless"),
        ({"img_dir": "pictures"}, r"`img_dir` must be a folder"),
        ({"splits": {"val": "missing.txt"}}, r"`splits.val` must name a file"),
        ({"splits": {"test": "val.txt"}}, r"`splits` must map train and/or val"),
        ({"reduce_zero_label": "yes"}, r"`reduce_zero_label` must be true or false"),
    ],
)
def test_bad_cards_name_the_file_and_the_field(card_folder, changes, message):
    _edit(card_folder, **changes)
    with pytest.raises(DatasetCardError, match=message) as error:
        folder_card.read_card(card_folder)
    assert str(error.value).startswith(str(card_folder / "dataset.json"))


def test_a_folder_without_card_or_with_bad_json_is_named(card_folder, tmp_path):
    (card_folder / "dataset.json").write_text("{'classes': 1}")
    with pytest.raises(DatasetCardError, match=r"dataset.json: not valid JSON"):
        folder_card.read_card(card_folder)
    with pytest.raises(DatasetCardError, match=r"empty/dataset.json not found"):
        folder_card.read_card(tmp_path / "empty")


def test_split_file_naming_missing_stems_is_named(card_folder, tmp_path):
    (card_folder / "train.txt").write_text("a\nghost/one\nghost/two\n")
    with pytest.raises(DatasetCardError, match=r"`splits.train` \(train.txt\) names 2 stems "
                       r"without an image images/<stem>.png.*'ghost/one'"):  # fmt: skip
        _prepare(card_folder, tmp_path / "tfds")


def test_a_colour_not_in_the_palette_stops_preparation_naming_file_and_colour(tmp_path):
    rng = np.random.default_rng(7)
    colours = np.zeros((*SIZE, 3), np.uint8)
    colours[0, :3] = (1, 2, 3)  # e.g. an anti-aliased edge
    folder = write_folder_dataset(
        tmp_path / "d", classes=CLASSES, palette=PALETTE, encoding="rgb",
        images={s: _image(rng) for s in ("a", "b")}, labels={"a": colours, "b": colours},
    )  # fmt: skip
    with pytest.raises(DatasetCardError, match=r"labels/a.png: colours not in the palette of "
                       r".*dataset.json \(`palette`\): \(1,2,3\): 3 px"):  # fmt: skip
        _prepare(folder, tmp_path / "tfds")


def test_colour_labels_under_index_encoding_are_named(card_folder, tmp_path):
    Image.fromarray(np.zeros((*SIZE, 3), np.uint8)).save(card_folder / "labels/a.png")
    with pytest.raises(DatasetCardError, match=r"labels/a.png must be a single-channel.*"
                       r"`label_encoding` 'index' \(for colour labels: 'rgb'\)"):  # fmt: skip
        _prepare(card_folder, tmp_path / "tfds")


# --- python -m uada.inspect_dataset ---


def test_inspect_dataset_prints_pixel_shares_and_what_would_be_ignored(tmp_path):
    rng = np.random.default_rng(8)
    written = {s: rng.choice([0, 1, 2, 7, 255], SIZE).astype(np.uint8) for s in ("a", "b", "c")}
    folder = write_folder_dataset(
        tmp_path / "d", classes=CLASSES, palette=PALETTE,
        images={**{s: _image(rng) for s in written}, "u": _image(rng)}, labels=written,
        splits={"train": ["a", "b", "u"], "val": ["c"]},
    )  # fmt: skip
    preview = tmp_path / "preview.png"

    result = run_main("uada.inspect_dataset", str(folder), f"--output={preview}")

    train = np.concatenate([written["a"], written["b"]])
    shares = [100 * np.mean(train == v) for v in (0, 1, 2, 3)]
    ignored = 100 * np.mean((train == 7) | (train == 255))
    assert f"| floor | 0 | 0,0,0 | {shares[0]:.1f} |" in result.stdout
    assert f"| cart | 3 | 0,0,142 | {shares[3]:.1f} |" in result.stdout
    assert f"| ignored (255) |  |  | {ignored:.1f} |" in result.stdout
    sevens = int(np.sum(train == 7))
    assert f"ignore (as 255) in train {sevens} pixels" in result.stdout
    assert "Images: 2 train, 1 val, 1 unlabelled" in result.stdout
    assert Image.open(preview).format == "PNG"


def test_inspect_dataset_reports_a_bad_card_in_one_message(card_folder):
    _edit(card_folder, label_encoding="ids")
    result = run_main("uada.inspect_dataset", str(card_folder), check=False)
    assert result.returncode == 1
    assert "`label_encoding` must be one of" in result.stderr
    assert "Traceback" not in result.stderr
    shutil.rmtree(card_folder)
