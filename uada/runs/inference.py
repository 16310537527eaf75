"""A trained run's segmenter put to use: label maps of image files (`predict`) and a SavedModel
(`export`). The library of `python -m uada.predict` and `python -m uada.export`.

`predict`: inputs are image files and folders; folders are searched recursively for `.png`, `.jpg`
and `.jpeg` files (any case), except the output folder if it lies inside one. The output folder
mirrors the inputs: an image `F/sub/x.jpg` found in a folder input `F` gives `OUT/sub/x*.png`, a
file input `x.jpg` gives `OUT/x*.png`. Three files per image, each at the image's own size:

- `x.png`: the predicted class indices (single-channel uint8: train ids 0..18, or a folder
  dataset's classes);
- `x_color.png`: the same in the run's palette (`uada.data.labels.colorize`; the Cityscapes
  palette, or the source's card's: `uada.data.domains.run_classes`);
- `x_overlay.png`: the image blended with the palette colours,
  `round(alpha * palette[label] + (1 - alpha) * image)` with `alpha = overlay_alpha` (0.5).

Every image, of any size, is read as 8-bit RGB (greyscale is repeated over the channels, an alpha
channel is dropped, 16-bit samples keep their high byte, a JPEG's EXIF orientation is applied),
resized to the model's input size (bilinear, anti-aliased: `uada.data.pipeline.resize`) and
predicted in inference mode without any domain input; the logits are resized bilinearly back to
the image's size and the argmax is the label
(`uada.models.label_prediction.resized_label_function`, the rule of
`python -m uada.evaluate --resolution=full`). A file that cannot be read as an image is
skipped with a warning and reported in the result (`Predictions.unreadable`).

`export`: the SavedModel (Keras `ExportArchive`) has one endpoint, `serve`: float32 RGB images in
[0, 255], shape `[N, H, W, 3]` with any `N` and the run's `H, W` (preprocessing is inside), to
float32 class scores (logits) `[N, H, W, K]`, K the run's classes (19 for the built-in datasets).
There is no domain input: every image is normalized with the moving statistics.
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image, ImageOps

from uada.data import domains as domains_lib
from uada.data import labels as labels_lib
from uada.data import pipeline
from uada.models import label_prediction
from uada.runs import workdir as workdir_lib

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
OUTPUT_SUFFIXES = ("", "_color", "_overlay")  # label map, palette colours, overlay


class UnreadableImageError(ValueError):
    """A file cannot be read as an image; the message names the file and the reason."""


@dataclasses.dataclass(frozen=True)
class Predictions:
    """What `predict` did.

    Attributes:
        written: the label-map files written (`OUT/.../x.png`), in input order.
        unreadable: `(file, reason)` of every input skipped because it cannot be read as an image.
    """

    written: list
    unreadable: list


def image_files(inputs, exclude=None):
    """Expands files and folders (recursively) into `(file, relative output stem)` pairs.

    A folder input `F` contributes every entry below it named `*.png`, `*.jpg` or `*.jpeg` (a
    folder so named too: it is reported as unreadable, its contents are searched), with the stem
    relative to `F` (`sub/x`); a file input contributes itself, with its own stem (`x`).

    Args:
        inputs: files and folders.
        exclude: a folder not to search (the output folder, when it lies inside an input folder:
            a second run does not predict the first run's outputs).

    Returns:
        A list of `(file, stem)` pairs, sorted by file within each input.

    Raises:
        FileNotFoundError: an input does not exist, or no image was found.
        ValueError: two images would write the same output files (e.g. `x.png` and `x.jpg`).
    """
    pairs = []
    for path in inputs:
        if os.path.isdir(path):
            found = []
            for root, folders, names in os.walk(path):
                folders[:] = [
                    f for f in folders if not _same_folder(os.path.join(root, f), exclude)
                ]
                found += [
                    os.path.join(root, name)
                    for name in folders + names
                    if name.lower().endswith(IMAGE_EXTENSIONS)
                ]
            found = [(f, os.path.splitext(os.path.relpath(f, path))[0]) for f in sorted(found)]
        elif os.path.lexists(path):
            found = [(path, os.path.splitext(os.path.basename(path))[0])]
        else:
            raise FileNotFoundError(f"--input: no such file or folder. Received: {path!r}")
        pairs += [pair for pair in found if pair not in pairs]  # an image named twice: once
    if not pairs:
        raise FileNotFoundError(
            f"--input: found no image ({', '.join(IMAGE_EXTENSIONS)}). Received: {list(inputs)}"
        )
    outputs = {}
    for file, stem in pairs:
        for suffix in OUTPUT_SUFFIXES:
            output = os.path.normcase(os.path.normpath(stem + suffix))
            if output in outputs and outputs[output] != file:
                raise ValueError(
                    f"--input: {outputs[output]} and {file} would both write {output}.png; "
                    "rename one, or predict them into different --output folders."
                )
            outputs[output] = file
    return pairs


def _same_folder(path, other):
    return other is not None and os.path.realpath(path) == os.path.realpath(other)


def read_image(path):
    """Reads an image file as 8-bit RGB at its own size (see the module docstring for modes).

    Returns:
        uint8 array `[H, W, 3]`.

    Raises:
        UnreadableImageError: `path` is not a readable image; the message says why.
    """
    if os.path.isdir(path):
        raise UnreadableImageError(f"{path}: a folder, not an image file")
    try:
        if os.path.getsize(path) == 0:
            raise UnreadableImageError(f"{path}: an empty file (0 bytes)")
        with Image.open(path) as image:
            image.load()  # decodes everything: a truncated or corrupt file fails here
            image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        if isinstance(error, UnreadableImageError):
            raise
        raise UnreadableImageError(f"{path}: {type(error).__name__}: {error}") from error
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit greyscale PNG
        grey = (np.asarray(image).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def predict(config, workdir, inputs, output, *, checkpoint=None,
            overlay_alpha=labels_lib.OVERLAY_ALPHA, verbose=1):  # fmt: skip
    """Writes the label map, its colours and the overlay of every image of `inputs`.

    Args:
        config: the run's `Config`.
        workdir: the run's directory.
        inputs: image files and/or folders.
        output: the output folder (created if needed).
        checkpoint: a checkpoint prefix; `None` for the workdir's latest.
        overlay_alpha: the palette's weight in the overlays, in [0, 1]. Defaults to 0.5.
        verbose: 1 shows Keras' progress bar, 0 nothing.

    Returns:
        `Predictions`: the label maps written and the unreadable inputs, which were skipped.

    Raises:
        FileNotFoundError, ValueError: see `image_files`; nothing is written then.
    """
    if not 0 <= overlay_alpha <= 1:
        raise ValueError(f"`overlay_alpha` must be in [0, 1]. Received: {overlay_alpha!r}")
    pairs = image_files(inputs, exclude=output)
    model, _ = workdir_lib.load_model(config, workdir, checkpoint)
    palette = domains_lib.run_classes(config).colors
    labels_at = label_prediction.resized_label_function(model.segmenter)
    progbar = keras.utils.Progbar(len(pairs), unit_name="image", verbose=verbose)
    written, unreadable = [], []
    for i, (file, stem) in enumerate(pairs):
        try:
            image = read_image(file)
        except UnreadableImageError as error:
            logging.warning("Skipping %s", error)
            unreadable.append((file, str(error).removeprefix(f"{file}: ")))
            progbar.update(i + 1)
            continue
        model_input, _ = pipeline.prepare(image, None, tuple(config.image_size))
        size = tf.constant(image.shape[:2], tf.int32)
        label_map = labels_at(model_input[None], size).numpy()[0].astype(np.uint8)
        base = os.path.join(output, stem)
        os.makedirs(os.path.dirname(base), exist_ok=True)
        Image.fromarray(label_map).save(base + ".png")
        Image.fromarray(labels_lib.colorize(label_map, palette)).save(base + "_color.png")
        Image.fromarray(labels_lib.overlay(image, label_map, overlay_alpha, palette)).save(
            base + "_overlay.png"
        )
        written.append(base + ".png")
        progbar.update(i + 1)
    print(f"Wrote {len(written)} label maps, colours and overlays to {output}")
    return Predictions(written=written, unreadable=unreadable)


def export(config, workdir, output, *, checkpoint=None, model=None):
    """Writes the SavedModel of the run's segmenter to `output`; returns `output`.

    Args:
        config: the run's `Config`.
        workdir: the run's directory.
        output: the SavedModel folder.
        checkpoint: a checkpoint prefix; `None` for the workdir's latest.
        model: an already restored model, else one is built and restored.
    """
    if model is None:
        model, _ = workdir_lib.load_model(config, workdir, checkpoint)
    segmenter = model.segmenter
    height, width = config.image_size
    archive = keras.export.ExportArchive()
    archive.track(segmenter)
    archive.add_endpoint(
        "serve",
        lambda images: tf.cast(segmenter(images, training=False), tf.float32),
        input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name="images")],
    )
    archive.write_out(output, verbose=False)
    print(f"Exported the segmenter of {workdir} to {output}")
    return output
