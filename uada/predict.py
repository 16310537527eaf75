"""Predicts the label map of images with a trained run's model.

    python -m uada.predict --workdir=DIR --input=<files or folders> --output=OUT [--checkpoint=...]

For every image (PNG or JPEG; folders are searched recursively) writes `OUT/<stem>.png`, the
predicted train ids (single-channel uint8, at the model's input size), and `OUT/<stem>_color.png`,
the same coloured with the Cityscapes palette. Images are resized (bilinear) to the model's input
size first; the model runs in inference mode, without any domain input.
"""

import os

import numpy as np
from absl import app
from PIL import Image

from uada import train_lib
from uada.data import labels as labels_lib
from uada.data import pipeline

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def image_files(inputs):
    """Expands files and folders (recursively) into a sorted list of image files.

    Raises:
        FileNotFoundError: an input does not exist, or no image was found.
    """
    files = []
    for path in inputs:
        if os.path.isdir(path):
            for root, _, names in os.walk(path):
                files += [
                    os.path.join(root, name)
                    for name in names
                    if name.lower().endswith(IMAGE_EXTENSIONS)
                ]
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"--input: no such file or folder. Received: {path!r}")
    if not files:
        raise FileNotFoundError(
            f"--input: found no image ({', '.join(IMAGE_EXTENSIONS)}). Received: {list(inputs)}"
        )
    return sorted(files)


def predict(config, workdir, inputs, output, *, checkpoint=None):
    """Writes `<stem>.png` and `<stem>_color.png` into `output` for every image of `inputs`.

    Args:
        config: the run's `Config`.
        workdir: the run's directory.
        inputs: image files and/or folders.
        output: the output folder (created if needed).
        checkpoint: a checkpoint prefix; `None` for the workdir's latest.

    Returns:
        The list of label-map files written.
    """
    files = image_files(inputs)
    stems = [os.path.splitext(os.path.basename(f))[0] for f in files]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise ValueError(
            f"--input: several images share the names {duplicates}; outputs would clash."
        )
    model, _ = train_lib.load_model(config, workdir, checkpoint)
    os.makedirs(output, exist_ok=True)
    written = []
    for file, stem in zip(files, stems, strict=True):
        try:
            image = np.asarray(Image.open(file).convert("RGB"))
        except OSError as error:
            raise ValueError(f"--input: cannot read the image {file}: {error}") from error
        image, _ = pipeline.prepare(image, None, tuple(config.image_size))
        logits = model.segmenter(image[None], training=False)
        label_map = np.argmax(logits.numpy()[0], axis=-1).astype(np.uint8)
        path = os.path.join(output, f"{stem}.png")
        Image.fromarray(label_map).save(path)
        Image.fromarray(labels_lib.colorize(label_map)).save(
            os.path.join(output, f"{stem}_color.png")
        )
        written.append(path)
    print(f"Wrote {len(written)} label maps to {output}")
    return written


def main(argv):
    from uada import flags as uada_flags

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected positional arguments: {argv[1:]}")
    fv = uada_flags.flags.FLAGS
    predict(
        train_lib.load_config(fv.workdir), fv.workdir, fv.input, fv.output, checkpoint=fv.checkpoint
    )


if __name__ == "__main__":
    from uada import flags as uada_flags

    uada_flags.define_predict_flags()
    app.run(main)
