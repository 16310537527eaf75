"""A folder dataset looked at before training: the library of `python -m uada.inspect_dataset`.

`inspect_folder` checks a folder against its card (`uada.data.folder_card`), lists its frames as
preparation would (`uada.data.builders.folder.list_frames`), decodes every label as preparation
would (`read_label`: the card's encoding, `label_map`, `reduce_zero_label`) at the files' own
size, and counts each class's pixels per split. It also gathers what preparation would skip
(images without labels outside the training split, labels without images), ignore (label values
the card does not know, counted as 255) or repair (labels of another size than their image),
and what would stop it (colours outside the palette of RGB labels, files that cannot be decoded).
`render` writes that as text; `inspect_folder` also draws a preview of a few images beside their
colour-coded labels, so a wrong `label_map` or palette shows before a run is trained on it.
"""

import collections
import dataclasses
import io
import os

import numpy as np
from PIL import Image

from uada.analysis import figures
from uada.data import folder_card
from uada.data.builders import common
from uada.data.builders.folder import folder as folder_builder
from uada.data.labels import IGNORE_LABEL

PREVIEW_SIZE = 128  # the preview's image height in pixels (each image resized to it)


@dataclasses.dataclass
class Inspection:
    """What `inspect_folder` found.

    Attributes:
        card: the `FolderCard`.
        images: `{split: number of images}` (split `unlabelled`: training images without labels).
        pixels: `{split: int64 array [num_classes + 1]}`: each class's labelled pixels, then the
            ignored (255) ones.
        skipped: `[(file, reason)]`: files preparation would leave out.
        unknown: `{split: Counter {value: pixels}}`: label values the card does not know
            (ignored); `unknown_files` counts their files the same way.
        repaired: `[(file, what)]`: labels preparation would resize to their image.
        errors: `[message]`: what would stop preparation (colours outside the palette, files
            that cannot be decoded).
        preview: the preview figure's path, or None.
    """

    card: folder_card.FolderCard
    images: dict
    pixels: dict
    skipped: list
    unknown: dict
    unknown_files: dict
    repaired: list
    errors: list
    preview: str | None = None


def inspect_folder(folder, preview=None, *, max_images=0, preview_images=4):
    """Inspects the folder dataset `folder` (see the module docstring).

    Args:
        folder: the dataset's folder (holding its dataset.json).
        preview: the preview figure's path (`.png`), or None for none.
        max_images: labels read per split (the first ones, in sorted order); 0 for all.
        preview_images: images in the preview (the first of `val`, then of `train`).

    Returns:
        An `Inspection`.

    Raises:
        uada.data.folder_card.DatasetCardError: the card is wrong (the message names the file
            and the field), or a split file names stems without an image.
    """
    card = folder_card.read_card(folder)
    files = folder_builder.files_of(card)
    frames, skipped = folder_builder.list_frames(card, files.paths())
    num_classes = len(card.classes)
    result = Inspection(
        card=card, images={split: len(f) for split, f in frames.items()}, pixels={},
        skipped=list(skipped), unknown={}, unknown_files={}, repaired=[], errors=[],
    )  # fmt: skip
    examples = []  # (image, label) for the preview
    for split in [split for split in ("val", "train") if split in frames]:  # preview: val first
        counts = np.zeros(num_classes + 1, dtype=np.int64)
        unknown, unknown_files = collections.Counter(), collections.Counter()
        for frame in frames[split][: max_images or None]:
            label_file = files.describe(frame.label)
            try:
                label, found = folder_builder.read_label(card, files.read(frame.label), label_file)
                image = Image.open(io.BytesIO(files.read(frame.image)))
                size = (image.height, image.width)
            except (common.CorruptFileError, folder_card.DatasetCardError) as error:
                result.errors.append(str(error))
                continue
            if found and card.label_encoding == "rgb":
                result.errors.append(
                    str(folder_builder.unknown_colours_error(card, label_file, found))
                )
            for value, count in found.items():
                unknown[value] += count
                unknown_files[value] += 1
            if label.shape != size:
                result.repaired.append(
                    (label_file, f"label size {label.shape[1]}x{label.shape[0]} differs from its "
                     f"image's {size[1]}x{size[0]}; resized to the image (nearest)")
                )  # fmt: skip
                label = common.resize_label(label, size)
            counts[:num_classes] += np.bincount(
                label[label != IGNORE_LABEL].ravel(), minlength=num_classes
            )[:num_classes]
            counts[num_classes] += int(np.sum(label == IGNORE_LABEL))
            if len(examples) < preview_images:
                examples.append((np.asarray(image.convert("RGB")), label))
        result.pixels[split] = counts
        if unknown:
            result.unknown[split], result.unknown_files[split] = unknown, unknown_files
    if preview and examples:
        result.preview = _draw_preview(examples, card, preview)
    return result


def _draw_preview(examples, card, path):
    """Images beside their colour-coded labels, each resized to `PREVIEW_SIZE` pixels high at
    the first image's aspect ratio (labels with nearest neighbour)."""
    height = PREVIEW_SIZE
    width = max(1, round(examples[0][0].shape[1] * height / examples[0][0].shape[0]))
    images = np.stack([common.resize_image(image, (height, width)) for image, _ in examples])
    labels = np.stack([common.resize_label(label, (height, width)) for _, label in examples])
    name = os.path.basename(os.path.normpath(card.folder))
    return figures.prediction_grid(images, labels, {}, path, title=name, classes=card.classes)


def render(inspection):
    """The inspection as text: the card, images per split, each class's pixel share per split,
    what preparation would skip, ignore, repair, or stop at, and the preview."""
    card = inspection.card
    splits = [split for split in ("train", "val") if split in inspection.pixels]
    encoding = card.label_encoding + (", reduce_zero_label" if card.reduce_zero_label else "")
    if card.label_map:
        encoding += f", label_map of {len(card.label_map)} values"
    how = (
        "split files " + ", ".join(f"{s}: {f}" for s, f in card.split_files.items())
        if card.splits is not None
        else "no split files: images with labels split 3:1 by the MD5 of their paths"
    )
    lines = [
        f"{card.path}: {len(card.classes)} classes, label_encoding {encoding}; {how}.",
        "Images: " + ", ".join(f"{n} {split}" for split, n in inspection.images.items())
        + (f" ({folder_builder.UNLABELLED}: training images without labels, for a target)"
           if folder_builder.UNLABELLED in inspection.images else ""),
        "",
        "| class | index | colour | " + " | ".join(f"{s} (% of pixels)" for s in splits) + " |",
        "|---|---:|---|" + "---:|" * len(splits),
    ]  # fmt: skip
    shares = {split: _shares(inspection.pixels[split]) for split in splits}
    names = [*card.classes.names, f"ignored ({IGNORE_LABEL})"]
    for i, name in enumerate(names):
        colour = ",".join(map(str, card.classes.palette[i])) if i < len(card.classes) else ""
        index = str(i) if i < len(card.classes) else ""
        cells = [shares[split][i] for split in splits]
        lines.append(f"| {name} | {index} | {colour} | " + " | ".join(cells) + " |")
    lines += ["", "Preparation would:"]
    lines.append(f"- skip {len(inspection.skipped)} file(s)" + ("" if inspection.skipped else "."))
    lines += [f"    {file}: {reason}" for file, reason in inspection.skipped]
    for split in splits:
        unknown = inspection.unknown.get(split)
        if not unknown or card.label_encoding == "rgb":
            continue
        values = folder_builder.describe_unknown(unknown, inspection.unknown_files[split])
        lines.append(
            f"- ignore (as {IGNORE_LABEL}) in {split} {sum(unknown.values())} pixels of label "
            f"values the card does not know: {values}"
        )
    if not any(inspection.unknown.values()):
        lines.append("- ignore no unknown label value.")
    lines.append(f"- resize {len(inspection.repaired)} label(s) to their image's size.")
    lines += [f"    {file}: {what}" for file, what in inspection.repaired]
    if inspection.errors:
        lines.append(f"- stop, at {len(inspection.errors)} file(s):")
        lines += [f"    {error}" for error in inspection.errors]
    if inspection.preview:
        lines += ["", f"Preview: {inspection.preview}"]
    return "\n".join(lines)


def _shares(counts):
    total = counts.sum()
    return [f"{100 * c / total:.1f}" if total else "-" for c in counts]
