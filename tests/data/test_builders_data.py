"""The builders' decoding and mapping on real dataset files, and their behaviour on bad input."""

import logging
import posixpath
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from uada.data import builders
from uada.data.builders import common
from uada.data.labels import lookup_table

# Hand-written label id -> train id for every id in the real GTA5 / Cityscapes fixtures;
# ids not listed (0, 1, 4, 5, 6, 15, 34, ...) are 255.
HAND_CITYSCAPES = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
    26: 13, 27: 14, 32: 17,
}  # fmt: skip


def _hand_map(raw, hand):
    expected = np.full(raw.shape, 255, dtype=np.uint8)
    for raw_id, train_id in hand.items():
        expected[raw == raw_id] = train_id
    return expected


def _dummy(name, *parts):
    return builders.BUILDERS[name].code_path.parent.joinpath("dummy_data", *parts)


def _prepare(name, manual_dir, data_dir, *, config="full", skip_corrupt=False):
    """Prepares `name` from `manual_dir`; returns the builder and `{split: [numpy examples]}`."""
    builder = builders.builder(name, data_dir=data_dir, config=config, skip_corrupt=skip_corrupt)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=str(manual_dir), compute_stats=tfds.download.ComputeStatsMode.SKIP
        )
    )
    examples = {
        split: sorted(tfds.as_numpy(builder.as_dataset(split=split)), key=lambda e: e["file_name"])
        for split in builder.info.splits
    }
    return builder, examples


def _link(pairs, root):
    """Symlinks `{relative path in root: source file}` into `root`."""
    for relative, source in pairs.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source)
    return root


# --- Palette decoding and the lookup tables on the real files ---


def test_gta5_palette_label_decodes_to_label_ids_not_colours(fixtures_dir):
    path = fixtures_dir / "gta5/labels/00001.png"
    data = path.read_bytes()
    assert Image.open(path).mode == "P"

    ids = common.decode_label_indices(data, path.name)

    assert ids.shape == (1052, 1914)
    np.testing.assert_array_equal(
        np.unique(ids), [0, 5, 6, 7, 11, 12, 13, 15, 17, 21, 22, 23, 24, 27]
    )
    # The trap: TF decodes the palette's colours. Road (id 7) is drawn in (128, 64, 128).
    colours = tf.io.decode_png(data).numpy()
    assert colours.shape == (1052, 1914, 3)
    np.testing.assert_array_equal(np.unique(colours[ids == 7], axis=0), [[128, 64, 128]])


def test_cityscapes_label_ids_through_the_table_match_train_ids(fixtures_dir):
    folder = fixtures_dir / "cityscapes/gtFine/val/frankfurt"
    label_ids = folder / "frankfurt_000000_000294_gtFine_labelIds.png"
    ids = common.decode_label_indices(label_ids.read_bytes(), label_ids.name)
    train_ids = np.array(Image.open(folder / "frankfurt_000000_000294_gtFine_labelTrainIds.png"))

    mapped = common.to_train_ids(ids, lookup_table("cityscapes"))

    np.testing.assert_array_equal(mapped, _hand_map(ids, HAND_CITYSCAPES))
    # The two files were downscaled separately upstream, so they agree on 99.8%, not 100%.
    assert np.mean(mapped == train_ids) >= 0.995


def test_to_train_ids_maps_values_outside_the_table_to_255():
    raw = np.array([[7, 34, 300], [-1, 26, 65535]], dtype=np.int32)  # e.g. a 16-bit label

    np.testing.assert_array_equal(
        common.to_train_ids(raw, lookup_table("gta5")), [[0, 255, 255], [255, 13, 255]]
    )
    np.testing.assert_array_equal(
        common.to_train_ids(np.array([7, 34, 255], np.uint8), lookup_table("gta5")), [0, 255, 255]
    )


def test_gta5_builder_on_real_frames(fixtures_dir, tmp_path):
    gta5 = fixtures_dir / "gta5"
    manual = _link(
        {f"{kind}/{n}.png": gta5 / kind / f"{n}.png" for kind in ("images", "labels")
         for n in ("00001", "00002")},
        tmp_path / "manual",
    )  # fmt: skip

    builder, examples = _prepare("gta5", manual, tmp_path / "data")

    # No split.mat: two frames split 1:1 (see `hashed_split`).
    assert {split: len(e) for split, e in examples.items()} == {"train": 1, "val": 1}
    for example in examples["train"] + examples["val"]:
        name = example["file_name"].decode()
        raw = np.array(Image.open(gta5 / "labels" / name))
        assert example["image"].shape == (1052, 1914, 3)
        np.testing.assert_array_equal(
            example["image"], np.array(Image.open(gta5 / "images" / name))
        )
        np.testing.assert_array_equal(example["label"][..., 0], _hand_map(raw, HAND_CITYSCAPES))
    # Frame 2 holds id 34, outside the table.
    assert builder.report.skipped == [] and builder.report.repaired == []


def test_cityscapes_builder_on_real_frame_both_configs(fixtures_dir, tmp_path):
    frame = "frankfurt_000000_000294"
    root = fixtures_dir / "cityscapes"
    manual = _link(
        {
            f"leftImg8bit/val/frankfurt/{frame}_leftImg8bit.png": root
            / f"leftImg8bit/val/frankfurt/{frame}_leftImg8bit.png",
            f"gtFine/val/frankfurt/{frame}_gtFine_labelIds.png": root
            / f"gtFine/val/frankfurt/{frame}_gtFine_labelIds.png",
        },
        tmp_path / "manual",
    )
    raw = np.array(Image.open(root / f"gtFine/val/frankfurt/{frame}_gtFine_labelIds.png"))

    _, full = _prepare("cityscapes", manual, tmp_path / "data")
    _, small = _prepare("cityscapes", manual, tmp_path / "data", config="384x768")

    (full,), (small,) = full["val"], small["val"]
    assert full["file_name"] == f"{frame}_leftImg8bit.png".encode()
    np.testing.assert_array_equal(full["label"][..., 0], _hand_map(raw, HAND_CITYSCAPES))
    assert small["image"].shape == (384, 768, 3) and small["label"].shape == (384, 768, 1)
    # 128x256 -> 384x768 is x3: nearest neighbour repeats every label pixel in a 3x3 block.
    np.testing.assert_array_equal(
        small["label"][..., 0], np.repeat(np.repeat(full["label"][..., 0], 3, 0), 3, 1)
    )


def test_mapillary_builder_on_real_frame_v20_layout(fixtures_dir, tmp_path):
    key = "__CRyFzoDOXn6unQ6a3DnQ"
    root = fixtures_dir / "mapillary/validation"
    manual = _link(
        {
            f"validation/images/{key}.jpg": root / f"images/{key}.jpg",
            f"validation/v1.2/labels/{key}.png": root / f"v1.2/labels/{key}.png",
        },
        tmp_path / "manual",
    )
    raw = np.array(Image.open(root / f"v1.2/labels/{key}.png"))  # ids 17, 44, 45

    _, examples = _prepare("mapillary", manual, tmp_path / "data")

    (example,) = examples["val"]
    # building 17 -> 2, pole 45 -> 5, 44 (not a Cityscapes class) -> 255.
    expected = np.select([raw == 17, raw == 45], [2, 5], 255).astype(np.uint8)
    np.testing.assert_array_equal(example["label"][..., 0], expected)
    assert example["image"].shape == (100, 100, 3)


def test_apolloscape_without_lists_gives_one_split_of_every_frame(tmp_path):
    manual = tmp_path / "manual"
    shutil.copytree(_dummy("apolloscape", "road01_ins"), manual / "road01_ins")

    _, examples = _prepare("apolloscape", manual, tmp_path / "data")

    assert list(examples) == ["val"] and len(examples["val"]) == 3
    for example in examples["val"]:
        # Dummy labels: left half car (33 -> 13), right half vegetation (113 -> 8).
        np.testing.assert_array_equal(np.unique(example["label"][:, :16]), [13])
        np.testing.assert_array_equal(np.unique(example["label"][:, 16:]), [8])


def test_load_returns_squeezed_train_id_labels(tmp_path):
    dataset = builders.load(
        "mapillary",
        "train",
        data_dir=tmp_path / "data",
        manual_dir=_dummy("mapillary", "v1.1"),
        config="384x768",
    )

    examples = list(dataset.as_numpy_iterator())
    assert len(examples) == 2
    assert examples[0]["image"].shape == (384, 768, 3) and examples[0]["image"].dtype == np.uint8
    assert examples[0]["label"].shape == (384, 768) and examples[0]["label"].dtype == np.uint8
    # Dummy labels: left half road (13 -> 0), right half sky (27 -> 10).
    np.testing.assert_array_equal(np.unique(examples[0]["label"][:, :384]), [0])
    np.testing.assert_array_equal(np.unique(examples[0]["label"][:, 384:]), [10])


# --- Bad input ---


def _gta5_without_split_mat(tmp_path):
    manual = tmp_path / "manual"
    shutil.copytree(_dummy("gta5"), manual, ignore=shutil.ignore_patterns("split.mat"))
    return manual


def test_gta5_repairs_label_size_skips_unlabelled_image_and_logs_summary(tmp_path, caplog):
    manual = _gta5_without_split_mat(tmp_path)
    caplog.set_level(logging.INFO, logger="absl")

    builder, examples = _prepare("gta5", manual, tmp_path / "data")

    # Four labelled frames without split.mat: 3 train / 1 val.
    assert {split: len(e) for split, e in examples.items()} == {"train": 3, "val": 1}
    assert builder.report.skipped == [("images/00005.png", "image without its label")]
    assert [file for file, _ in builder.report.repaired] == ["labels/00003.png"]
    assert "16x8 differs from its image's 32x16" in builder.report.repaired[0][1]
    frame3 = next(e for s in examples.values() for e in s if e["file_name"] == b"00003.png")
    # The 8x16 label (road | 34) was resized to the 16x32 image; 34 is outside the table -> 255.
    expected = np.full((16, 32), 255, np.uint8)
    expected[:, :16] = 0
    np.testing.assert_array_equal(frame3["label"][..., 0], expected)
    assert "uada_gta5: prepared 4 examples (train=3, val=1); skipped 1 files, repaired 1" in (
        caplog.text
    )
    assert "skipped images/00005.png: image without its label" in caplog.text


def test_gta5_split_mat_assigns_the_owners_splits(tmp_path):
    _, examples = _prepare("gta5", _dummy("gta5"), tmp_path / "data")

    names = {split: [e["file_name"].decode() for e in e_] for split, e_ in examples.items()}
    # split.mat: train 1, 2; val 3; test 4, 5 (frame 5 has no label).
    assert names == {
        "train": ["00001.png", "00002.png"],
        "val": ["00003.png"],
        "test": ["00004.png"],
    }


def test_a_split_is_read_in_file_order(tmp_path):
    # TFDS stores examples in the hash order of their keys unless the builder disables
    # shuffling; then `take(N)` (--eval_max_images=N) would be a hash-chosen subset, not the
    # first N files as in the original's evaluation. 16 frames without split.mat: 12 train.
    manual = tmp_path / "manual"
    rng = np.random.default_rng(0)
    for n in range(1, 17):
        for folder, array in (("images", rng.integers(0, 255, (8, 16, 3), np.uint8)),
                              ("labels", np.full((8, 16), 7, np.uint8))):  # fmt: skip
            (manual / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(manual / folder / f"{n:05d}.png")
    splits = builders.gta5.gta5.hashed_split(
        [common.Frame(f"images/{n:05d}.png", f"labels/{n:05d}.png", None) for n in range(1, 17)]
    )
    expected = [posixpath.basename(frame.image) for frame in splits["train"]]  # sorted by path
    dataset = builders.load("gta5", "train", data_dir=tmp_path / "data", manual_dir=manual)
    assert [e["file_name"].decode() for e in dataset.as_numpy_iterator()] == expected
    first = builders.load("gta5", "train", data_dir=tmp_path / "data").take(5)
    assert [e["file_name"].decode() for e in first.as_numpy_iterator()] == expected[:5]


def test_hashed_split_is_the_paper_size_on_a_large_dataset():
    frames = [
        common.Frame(f"images/{n:05d}.png", f"labels/{n:05d}.png", None) for n in range(1, 24967)
    ]

    splits = builders.gta5.gta5.hashed_split(frames)

    assert (len(splits["train"]), len(splits["val"])) == (9000, 3000)
    assert not {f.image for f in splits["train"]} & {f.image for f in splits["val"]}
    assert (
        builders.gta5.gta5.hashed_split(frames[:40])["val"]
        == (builders.gta5.gta5.hashed_split(list(reversed(frames[:40])))["val"])
    )


def test_missing_component_names_it_where_looked_and_how_to_download(tmp_path):
    manual = _gta5_without_split_mat(tmp_path)
    shutil.rmtree(manual / "labels")

    with pytest.raises(FileNotFoundError, match=r"missing `labels/`") as error:
        _prepare("gta5", manual, tmp_path / "data")

    assert f"{manual}/labels" in str(error.value) and f"{manual}/*labels.zip" in str(error.value)
    assert "download.visinf.tu-darmstadt.de" in str(error.value)


def test_missing_cityscapes_zip_names_it(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    shutil.copy(_dummy("cityscapes", "zips", "gtFine_trainvaltest.zip"), manual)

    with pytest.raises(
        FileNotFoundError, match=r"missing `leftImg8bit/`.*leftImg8bit_trainvaltest"
    ):
        _prepare("cityscapes", manual, tmp_path / "data")


def test_missing_manual_dir_says_where_and_how(tmp_path):
    with pytest.raises(AssertionError, match=r"(?s)does not exist.*cityscapes-dataset.com"):
        _prepare("cityscapes", tmp_path / "nowhere", tmp_path / "data")


def test_corrupt_image_raises_naming_the_file_unless_skip_corrupt(tmp_path):
    manual = _gta5_without_split_mat(tmp_path)
    image = manual / "images/00002.png"
    image.write_bytes(image.read_bytes()[:60])  # truncated

    with pytest.raises(common.CorruptFileError, match=r"Cannot decode .*images/00002\.png"):
        _prepare("gta5", manual, tmp_path / "data")

    builder, examples = _prepare("gta5", manual, tmp_path / "data2", skip_corrupt=True)
    assert sum(len(e) for e in examples.values()) == 3
    assert [file for file, _ in builder.report.skipped] == ["images/00005.png", "images/00002.png"]
    assert "corrupt file" in builder.report.skipped[1][1]


def test_rgb_label_is_rejected_naming_the_file(tmp_path):
    manual = _gta5_without_split_mat(tmp_path)
    Image.new("RGB", (32, 16)).save(manual / "labels/00001.png")

    with pytest.raises(ValueError, match=r"labels/00001\.png must be a single-channel.*'RGB'"):
        _prepare("gta5", manual, tmp_path / "data")


def test_builder_rejects_unknown_name_and_config():
    with pytest.raises(ValueError, match=r"Received: name='synthia'"):
        builders.builder("synthia")
    with pytest.raises(ValueError, match=r"Received: config='512x1024'"):
        builders.builder("gta5", config="512x1024")


def test_load_refuses_a_data_dir_prepared_from_another_manual_dir(tmp_path):
    data_dir = tmp_path / "data"
    builders.load("mapillary", "val", data_dir=data_dir, manual_dir=_dummy("mapillary", "v1.1"))

    # The same folder again reads the prepared data; another folder must use another data_dir.
    again = builders.load(
        "mapillary", "val", data_dir=data_dir, manual_dir=_dummy("mapillary", "v1.1")
    )
    assert len(list(again)) == 1
    with pytest.raises(ValueError, match=r"prepared from .*v1\.1.*Received: manual_dir=.*v2\.0"):
        builders.load("mapillary", "val", data_dir=data_dir, manual_dir=_dummy("mapillary", "v2.0"))
