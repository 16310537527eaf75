"""Looks at a folder dataset before training on it: its classes, their pixels, what preparation
would skip or ignore, and a preview.

    python -m uada.inspect_dataset PATH [--output=PREVIEW.png] [--max_images=N]

PATH is a folder dataset: a folder holding its card, `dataset.json` (`uada.data.folder_card`).
The command checks the folder against its card, prints the classes with their share of the
labelled pixels per split, what preparation would skip (images without labels outside the
training split, labels without images), ignore (label values the card does not know) or repair
(labels of another size than their image), and writes a preview (`--output`, default
`<folder name>_preview.png`): a few validation images beside their labels in the card's palette.
`uada.analysis.dataset_inspection` does the work.

Exit status: 0; 1 with the message when the card is wrong (naming the file and the field) or
when preparation would stop (a colour outside the palette, a file that cannot be decoded).
"""

# ruff: noqa: E402 (the imports below come after the console has started)
from uada import console

if __name__ == "__main__":
    console.start()  # before anything imports TensorFlow

import os

from absl import app

from uada import command_errors
from uada import flags as uada_flags
from uada.analysis import dataset_inspection


def main(argv):
    if len(argv) != 2:
        raise app.UsageError(
            "Give one folder dataset: python -m uada.inspect_dataset PATH. Received: "
            f"{argv[1:] or 'none'}"
        )
    fv = uada_flags.flags.FLAGS
    folder = argv[1]
    output = fv.output or f"{os.path.basename(os.path.normpath(folder))}_preview.png"
    inspection = dataset_inspection.inspect_folder(
        folder, output, max_images=fv.max_images, preview_images=fv.preview_images
    )
    print(dataset_inspection.render(inspection))
    return 1 if inspection.errors else 0


if __name__ == "__main__":
    uada_flags.define_inspect_dataset_flags()
    with command_errors.reported(*command_errors.DATA_ERRORS):  # a few lines, exit status 1
        app.run(main)
