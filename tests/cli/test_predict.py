"""The predict command on a folder of images of any size and mode, some of them unreadable."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_main
from PIL import Image

from uada.data.labels import PALETTE
from uada.runs import inference
from uada.runs import workdir as workdir_lib

ALPHA = 0.5  # --overlay_alpha's default


def _good_images(rng):
    """`{relative path: (bytes to write, the 8-bit RGB image uada must read)}`."""

    def encoded(array, format="PNG", **kwargs):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format=format, **kwargs)
        return buffer.getvalue()

    rgb = rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)
    small = rng.integers(0, 256, (24, 48, 3), dtype=np.uint8)  # smaller than the model's 32x64
    model_size = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (21, 33, 4), dtype=np.uint8)
    grey = rng.integers(0, 256, (17, 90), dtype=np.uint8)
    deep_grey = rng.integers(0, 65536, (30, 50), dtype=np.uint16)
    deep_rgb = rng.integers(0, 65536, (20, 40, 3), dtype=np.uint16)
    photo = rng.integers(0, 256, (50, 30, 3), dtype=np.uint8)
    photo_bytes = encoded(photo, "JPEG", quality=90)
    return {
        "a/scene.png": (encoded(rgb), rgb),  # the same stem in two folders
        "b/scene.png": (encoded(small), small),
        "model_size.png": (encoded(model_size), model_size),
        "rgba.png": (encoded(rgba), rgba[..., :3]),  # alpha dropped
        "grey.png": (encoded(grey), np.repeat(grey[..., None], 3, -1)),
        "deep_grey.png": (encoded(deep_grey), np.repeat((deep_grey >> 8)[..., None], 3, -1)),
        "deep_rgb.png": (tf.io.encode_png(deep_rgb).numpy(), (deep_rgb >> 8).astype(np.uint8)),
        "photo.JPG": (photo_bytes, np.asarray(Image.open(io.BytesIO(photo_bytes)))),
    }


@pytest.fixture(scope="module")
def run(smoke_run, tmp_path_factory):
    """One `python -m uada.predict` over a folder of good and broken images."""
    folder = tmp_path_factory.mktemp("predict")
    images = folder / "images"
    good = _good_images(np.random.default_rng(0))
    for name, (data, _) in good.items():
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        (images / name).write_bytes(data)
    png = good["a/scene.png"][0]
    broken = {
        "corrupt.png": b"\x89PNG not really" + bytes(range(256)),
        "truncated.png": png[: len(png) // 2],
        "empty.jpg": b"",
    }
    for name, data in broken.items():
        (images / name).write_bytes(data)
    (images / "folder.png").mkdir()
    broken["folder.png"] = None
    output = folder / "out"
    result = run_main("uada.predict", f"--workdir={smoke_run.workdir}", f"--input={images}",
                         f"--output={output}", check=False)  # fmt: skip
    return dict(result=result, images=images, output=output, good=good, broken=broken)


def _outputs(run, name):
    stem = os.path.splitext(name)[0]
    return [
        np.asarray(Image.open(run["output"] / f"{stem}{s}.png")) for s in ("", "_color", "_overlay")
    ]


def test_every_readable_image_gets_its_three_outputs_at_its_size(run):
    assert run["result"].returncode == 1, run["result"].stderr[-3000:]
    written = sorted(
        os.path.relpath(os.path.join(root, name), run["output"])
        for root, _, names in os.walk(run["output"])
        for name in names
    )
    expected = sorted(
        f"{os.path.splitext(name)[0]}{suffix}.png"
        for name in run["good"]
        for suffix in ("", "_color", "_overlay")
    )
    assert written == expected
    for name, (_, image) in run["good"].items():
        label_map, color, overlay = _outputs(run, name)
        height, width = image.shape[:2]
        assert label_map.shape == (height, width) and label_map.dtype == np.uint8, name
        assert label_map.max() < 19, name
        np.testing.assert_array_equal(color, PALETTE[label_map], err_msg=name)
        # The overlay, by its formula: alpha * palette colour + (1 - alpha) * image, rounded.
        expected_overlay = np.round(ALPHA * PALETTE[label_map] + (1 - ALPHA) * image.astype(float))
        np.testing.assert_array_equal(overlay, expected_overlay.astype(np.uint8), err_msg=name)
    # ... and by hand for a few pixels.
    image = run["good"]["a/scene.png"][1]
    label_map, _, overlay = _outputs(run, "a/scene.png")
    for y, x in [(0, 0), (17, 33), (39, 69)]:
        for c in range(3):
            value = 0.5 * int(PALETTE[label_map[y, x], c]) + 0.5 * int(image[y, x, c])
            assert overlay[y, x, c] == int(np.round(value)), (y, x, c)
    # Two images with one stem in different folders: two sets of outputs, each its own.
    assert _outputs(run, "a/scene.png")[0].shape == (40, 70)
    assert _outputs(run, "b/scene.png")[0].shape == (24, 48)


def test_unreadable_files_are_listed_with_the_reason(run):
    stderr = run["result"].stderr
    assert f"{len(run['broken'])} file(s) could not be read as images" in stderr
    listed = {}
    for line in stderr.splitlines():
        for name in run["broken"]:
            if line.startswith(f"  {run['images'] / name}: "):
                listed[name] = line.split(": ", 1)[1]
    assert sorted(listed) == sorted(run["broken"])
    assert listed["folder.png"] == "a folder, not an image file"
    assert listed["empty.jpg"] == "an empty file (0 bytes)"
    assert "UnidentifiedImageError" in listed["corrupt.png"]
    assert "truncated" in listed["truncated.png"].lower()
    assert "Wrote 8 label maps" in run["result"].stdout


def _resized_prediction(smoke_run, image):
    """The documented rule computed directly: resize the image to the model's size (bilinear,
    anti-aliased), run the segmenter, resize the logits bilinearly to the image's size, argmax.
    Returns the label map and the resized logits."""
    model = workdir_lib.build_model(smoke_run.config)
    workdir_lib.restore_model(model, smoke_run.workdir)
    resized = tf.image.resize(
        tf.constant(image, tf.float32), smoke_run.config.image_size, "bilinear", antialias=True
    )
    logits = model.segmenter(resized[None], training=False)
    logits = tf.image.resize(logits, image.shape[:2], "bilinear")[0].numpy()
    return logits.argmax(-1), logits


@pytest.mark.parametrize("name", ["a/scene.png", "b/scene.png", "grey.png", "model_size.png"])
def test_label_map_is_the_model_prediction_resized_as_documented(smoke_run, run, name):
    image = run["good"][name][1]
    expected, logits = _resized_prediction(smoke_run, image)
    label_map = _outputs(run, name)[0]
    differ = label_map != expected
    # Another process, the same ops: a pixel may only differ where two classes tie.
    top = np.take_along_axis(logits, expected[..., None], -1)[..., 0]
    chosen = np.take_along_axis(logits, label_map[..., None].astype(int), -1)[..., 0]
    assert np.all(np.abs(top - chosen)[differ] < 1e-5), name
    assert differ.mean() < 0.01, name


def test_overlay_alpha_flag_and_library_result(smoke_run, run, tmp_path):
    result = inference.predict(
        smoke_run.config, smoke_run.workdir, [str(run["images"] / "rgba.png")], str(tmp_path),
        overlay_alpha=0.25, verbose=0,
    )  # fmt: skip
    assert result.written == [str(tmp_path / "rgba.png")] and result.unreadable == []
    image = run["good"]["rgba.png"][1]
    label_map = np.asarray(Image.open(tmp_path / "rgba.png"))
    overlay = np.asarray(Image.open(tmp_path / "rgba_overlay.png"))
    expected = np.round(0.25 * PALETTE[label_map] + 0.75 * image.astype(float)).astype(np.uint8)
    np.testing.assert_array_equal(overlay, expected)
    np.testing.assert_array_equal(label_map, _outputs(run, "rgba.png")[0])
    broken = inference.predict(
        smoke_run.config, smoke_run.workdir, [str(run["images"] / "empty.jpg")], str(tmp_path),
        verbose=0,
    )  # fmt: skip
    assert broken.written == []
    assert broken.unreadable == [(str(run["images"] / "empty.jpg"), "an empty file (0 bytes)")]


def test_all_good_images_exit_zero(smoke_run, run, tmp_path):
    result = run_main("uada.predict", f"--workdir={smoke_run.workdir}",
                         f"--input={run['images'] / 'a'},{run['images'] / 'grey.png'}",
                         f"--output={tmp_path}")  # fmt: skip
    assert result.returncode == 0 and "could not be read" not in result.stderr
    assert sorted(os.listdir(tmp_path)) == [
        "grey.png", "grey_color.png", "grey_overlay.png",
        "scene.png", "scene_color.png", "scene_overlay.png",
    ]  # fmt: skip
    result = run_main("uada.predict", f"--workdir={smoke_run.workdir}",
                         f"--input={run['images']}", "--output=o", "--overlay_alpha=1.5",
                         check=False)  # fmt: skip
    assert result.returncode != 0 and "overlay_alpha" in result.stderr


def test_images_that_would_write_the_same_files_are_refused(tmp_path):
    for name in ("x.png", "x.jpg"):
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    with pytest.raises(ValueError, match=r"x\.jpg and .*x\.png would both write x\.png"):
        inference.image_files([str(tmp_path)])
    (tmp_path / "x.jpg").unlink()
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "sub" / "x.png")
    pairs = inference.image_files([str(tmp_path), str(tmp_path / "x.png")])
    assert pairs == [(str(tmp_path / "sub" / "x.png"), os.path.join("sub", "x")),
                     (str(tmp_path / "x.png"), "x")]  # fmt: skip
    # An output folder inside the input folder is not searched.
    assert inference.image_files([str(tmp_path)], exclude=str(tmp_path / "sub")) == [
        (str(tmp_path / "x.png"), "x")
    ]


def test_read_image_modes(tmp_path):
    deep = np.array([[0, 255, 256, 65535]], np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    np.testing.assert_array_equal(
        inference.read_image(tmp_path / "deep.png")[..., 1], [[0, 0, 1, 255]]
    )
    Image.fromarray(np.array([[[10, 20, 30, 0]]], np.uint8)).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(inference.read_image(tmp_path / "rgba.png"), [[[10, 20, 30]]])
    # A JPEG rotated by its EXIF orientation is read as it is displayed.
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (8, 4)).save(tmp_path / "rotated.jpg", exif=exif)
    assert inference.read_image(tmp_path / "rotated.jpg").shape == (8, 4, 3)
