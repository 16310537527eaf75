"""Tests of the procedural demo domains."""

import hashlib

import numpy as np
import pytest
from conftest import run_main
from PIL import Image

from uada.data import demo_generator
from uada.data.labels import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES, lookup_table

_SMALL = dict(
    image_size=(32, 64),
    num_source=3,
    num_target_train=2,
    num_target_val=2,
    num_unseen_train=1,
    num_unseen_val=2,
)


def _digest(root):
    """{relative path: sha256} of every file under root."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_generate_is_deterministic_in_the_seed(tmp_path):
    demo_generator.generate(tmp_path / "a", seed=3, **_SMALL)
    demo_generator.generate(tmp_path / "b", seed=3, **_SMALL)
    demo_generator.generate(tmp_path / "c", seed=4, **_SMALL)
    a, b, c = (_digest(tmp_path / name) for name in "abc")
    assert a == b
    assert a.keys() == c.keys()
    different = sum(a[key] != c[key] for key in a)
    assert different == len(a) - 1  # every file changes with the seed but shift.json


def test_layouts_and_label_files(tmp_path):
    paths = demo_generator.generate(tmp_path, seed=0, **_SMALL)
    source = paths["source"]
    assert sorted(p.name for p in (source / "images").iterdir()) == [
        "00001.png",
        "00002.png",
        "00003.png",
    ]
    raw_ids = set(int(k) for k in np.flatnonzero(lookup_table("cityscapes") != IGNORE_LABEL))
    for index in range(3):
        image = Image.open(source / "images" / f"{index + 1:05d}.png")
        label = Image.open(source / "labels" / f"{index + 1:05d}.png")
        assert image.mode == "RGB" and image.size == (64, 32)
        assert label.mode == "P" and label.size == (64, 32)
        ids = np.array(label)  # palette indices = Cityscapes label ids
        assert set(np.unique(ids).tolist()) <= raw_ids | {0}
        # Mapping the ids back gives exactly the train ids that were drawn.
        expected_image, expected_label = demo_generator.draw_example("source", 0, index, (32, 64))
        np.testing.assert_array_equal(lookup_table("gta5")[ids], expected_label)
        np.testing.assert_array_equal(np.array(image), expected_image)
        # The palette colours road (label id 7) with its Cityscapes colour.
        assert label.getpalette()[7 * 3 : 7 * 3 + 3] == [128, 64, 128]

    for domain, cities in (
        ("target", demo_generator.TARGET_CITIES),
        ("unseen", demo_generator.UNSEEN_CITIES),
    ):
        for split, count in (("train", 2 if domain == "target" else 1), ("val", 2)):
            images = sorted((paths[domain] / "leftImg8bit" / split).rglob("*_leftImg8bit.png"))
            labels = sorted((paths[domain] / "gtFine" / split).rglob("*_gtFine_labelIds.png"))
            assert len(images) == len(labels) == count
            for image_path, label_path in zip(images, labels, strict=True):
                assert image_path.parent.name in cities[split]
                stem = image_path.name[: -len("_leftImg8bit.png")]
                assert label_path.name == f"{stem}_gtFine_labelIds.png"
                assert stem.startswith(image_path.parent.name + "_")
                label = Image.open(label_path)
                assert label.mode == "L"
                assert set(np.unique(np.array(label)).tolist()) <= raw_ids | {0, 1}


def _statistics(domain, count=12):
    images = np.stack([demo_generator.draw_example(domain, 0, i)[0] for i in range(count)]).astype(
        np.float64
    )
    return images.mean(axis=(0, 1, 2)), images.std(axis=(0, 1, 2))


def test_domains_differ_measurably():
    stats = {domain: _statistics(domain) for domain in demo_generator.DOMAINS}
    for first, second in (("source", "target"), ("source", "unseen"), ("target", "unseen")):
        mean_gap = np.abs(stats[first][0] - stats[second][0]).max()
        std_gap = np.abs(stats[first][1] - stats[second][1]).max()
        assert mean_gap > 12.0, (first, second, stats[first], stats[second])
        assert std_gap > 6.0, (first, second, stats[first], stats[second])
    # The game-like source is the most contrasted and the unseen dusk the darkest.
    assert np.all(stats["source"][1] > stats["target"][1] + 10.0)
    assert stats["unseen"][0].mean() < stats["source"][0].mean() - 25.0


def test_source_is_flat_and_target_is_textured():
    def roughness(domain):
        images = np.stack([demo_generator.draw_example(domain, 0, i)[0] for i in range(6)]).astype(
            float
        )
        return np.abs(np.diff(images, axis=2)).mean()

    assert roughness("target") > 1.3 * roughness("source")


def test_labels_contain_many_classes():
    for domain in demo_generator.DOMAINS:
        labels = [demo_generator.draw_example(domain, 0, i)[1] for i in range(16)]
        present = set(np.concatenate([np.unique(label) for label in labels]).tolist())
        assert len(present - {IGNORE_LABEL}) >= 15, (domain, present)
        assert present <= set(range(NUM_CLASSES)) | {IGNORE_LABEL}
        assert 16 not in present  # the demo has no trains
        assert min(len(np.unique(label)) for label in labels) >= 8


def test_only_the_target_has_an_ignored_ego_vehicle():
    assert np.any(demo_generator.draw_example("target", 0, 0)[1] == IGNORE_LABEL)
    assert not np.any(demo_generator.draw_example("source", 0, 0)[1] == IGNORE_LABEL)


def test_bad_arguments_raise_naming_them(tmp_path):
    with pytest.raises(ValueError, match="domain='real'"):
        demo_generator.domain_style("real")
    with pytest.raises(ValueError, match="num_source=-1"):
        demo_generator.generate(tmp_path, num_source=-1)
    with pytest.raises(ValueError, match="image_size"):
        demo_generator.draw_example("source", 0, 0, image_size=(8, 8))


def test_command_line(tmp_path):
    # `python -m uada.demo`, its flags defined in uada.flags (absl).
    result = run_main("uada.demo", f"--output={tmp_path}", "--seed=1", "--height=32",
                      "--width=64")  # fmt: skip
    assert f"source: {tmp_path / 'source'}" in result.stdout.splitlines()
    assert len(list((tmp_path / "source" / "images").iterdir())) == 300
    assert "Shift: full. Pixel frequency per class:" in result.stdout
    assert "| road |" in result.stdout
    bad = run_main("uada.demo", f"--output={tmp_path / 'x'}", "--shift=colour", check=False)
    assert bad.returncode != 0 and "--shift" in bad.stderr and not (tmp_path / "x").exists()


def test_shift_factors_and_groups():
    assert demo_generator.shift_factors(("full",)) == tuple(demo_generator.FACTORS)
    assert demo_generator.shift_factors("appearance") == demo_generator.APPEARANCE_FACTORS
    assert demo_generator.shift_factors(("camera", "color")) == ("color", "camera")  # FACTORS order
    assert demo_generator.shift_factors(("layout", "blur")) == ("blur", "camera", "objects")
    assert demo_generator.shift_name(("texture", "color", "blur", "noise", "haze", "exposure")) == (
        "appearance"
    )
    assert demo_generator.shift_name(("color", "camera")) == "color+camera"
    # Every style parameter belongs to exactly one factor.
    parameters = [p for members in demo_generator.FACTORS.values() for p in members]
    assert sorted(parameters) == sorted(demo_generator.domain_style("source"))
    assert len(set(parameters)) == len(parameters)
    with pytest.raises(ValueError, match="colour"):
        demo_generator.shift_factors(("colour",))
    with pytest.raises(ValueError, match=r"shift=\(\)"):
        demo_generator.shift_factors(())


@pytest.mark.parametrize("domain", ["target", "unseen"])
def test_a_domain_takes_its_own_value_only_for_the_shifted_factors(domain):
    source, own = demo_generator.domain_style("source"), demo_generator.domain_style(domain)
    assert demo_generator.domain_style(domain, ("full",)) == own
    assert demo_generator.domain_style(domain, ("none",)) == source
    for factor, members in demo_generator.FACTORS.items():
        style = demo_generator.domain_style(domain, (factor,))
        for parameter in style:
            expected = own if parameter in members else source
            assert style[parameter] == expected[parameter], (factor, parameter)


def test_no_shift_draws_the_source_distribution_and_appearance_keeps_the_layout():
    # With no shift the target is drawn from the source's distribution (other random draws):
    # flat, saturated images, no ego vehicle.
    image, label = demo_generator.draw_example("target", 0, 0, shift=("none",))
    assert not np.any(label == IGNORE_LABEL)
    # Appearance only: the label maps follow the source's layout distribution (no ego vehicle,
    # the source's horizon range), the images the target's look (texture: rougher than source).
    labels = [
        demo_generator.draw_example("target", 0, i, shift=("appearance",))[1] for i in range(6)
    ]
    assert not any(np.any(label == IGNORE_LABEL) for label in labels)
    sky = CLASS_NAMES.index("sky")
    for label in labels:  # sky rows end at the horizon, in the source's range 0.38-0.48 of H
        rows = np.flatnonzero((label == sky).any(axis=1))
        assert rows.max() <= 0.48 * label.shape[0] + 1

    def roughness(shift):
        images = [demo_generator.draw_example("target", 0, i, shift=shift)[0] for i in range(6)]
        return np.mean([np.abs(np.diff(i.astype(float), axis=1)).mean() for i in images])

    assert roughness(("appearance",)) > 1.3 * roughness(("none",))


def test_class_frequencies_are_the_label_files_pixel_frequencies(tmp_path):
    small = {**_SMALL, "num_source": 4}
    demo_generator.generate(tmp_path / "full", seed=0, **small)
    demo_generator.generate(tmp_path / "appearance", seed=0, shift=("appearance",), **small)
    frequencies = demo_generator.class_frequencies(tmp_path / "full")
    assert set(frequencies) == set(demo_generator.DOMAINS)
    # Recount the target's frequencies from the label files themselves.
    counts = np.zeros(256)
    for path in (tmp_path / "full" / "target" / "gtFine").rglob("*_labelIds.png"):
        train_ids = lookup_table("cityscapes")[np.array(Image.open(path))]
        counts += np.bincount(train_ids.reshape(-1), minlength=256)
    for index, name in enumerate(CLASS_NAMES):
        assert frequencies["target"][name] == pytest.approx(counts[index] / counts.sum())
    assert frequencies["target"]["ignore"] == pytest.approx(counts[IGNORE_LABEL] / counts.sum())
    assert frequencies["target"]["ignore"] > 0  # the ego vehicle
    assert demo_generator.class_frequencies(tmp_path / "appearance")["target"]["ignore"] == 0
    assert "| road |" in demo_generator.format_class_frequencies(frequencies)
    with pytest.raises(FileNotFoundError, match="not written by"):
        demo_generator.class_frequencies(tmp_path / "source_missing")
