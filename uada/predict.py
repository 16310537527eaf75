"""Predicts the label maps of images with a trained run's model.

    python -m uada.predict --workdir=DIR --input=<files or folders> --output=OUT \
        [--checkpoint=DIR/checkpoints/ckpt-100] [--overlay_alpha=0.5]

Inputs are image files and folders (searched recursively for `.png`, `.jpg`, `.jpeg`); the output
folder mirrors them, with three files per image at the image's own size: `x.png` (train ids, or
a folder dataset's class indices), `x_color.png` (the run's palette: the Cityscapes palette, or
the source's card's) and `x_overlay.png` (the image blended with the palette colours, weight
`--overlay_alpha`). `uada.runs.inference.predict` does the work and its module
docstring gives the rules. Keras' progress bar counts the images.

A file that cannot be read as an image (corrupt or truncated, empty, a folder named like an image)
is skipped with a warning; the others are all predicted. At the end the command lists the skipped
files with the reason and exits with status 1 if there were any.
"""

# ruff: noqa: E402 (the imports below come after the console has started)
from uada import console

if __name__ == "__main__":
    console.start()  # before anything imports TensorFlow

import sys

from absl import app

from uada import command_errors
from uada import flags as uada_flags
from uada.runs import inference
from uada.runs import workdir as workdir_lib


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected positional arguments: {argv[1:]}")
    fv = uada_flags.flags.FLAGS
    result = inference.predict(
        workdir_lib.load_config(fv.workdir), fv.workdir, fv.input, fv.output,
        checkpoint=fv.checkpoint, overlay_alpha=fv.overlay_alpha,
    )  # fmt: skip
    if result.unreadable:
        lines = [f"  {file}: {reason}" for file, reason in result.unreadable]
        print(
            f"{len(result.unreadable)} file(s) could not be read as images and were skipped:\n"
            + "\n".join(lines),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    uada_flags.define_predict_flags()
    errors = (*command_errors.CHECKPOINT_ERRORS, *command_errors.DATA_ERRORS)
    with command_errors.reported(*errors):  # a few lines, status 1
        app.run(main)
