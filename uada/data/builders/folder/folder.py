"""A folder dataset described by its card (`uada.data.folder_card`), as one TFDS builder.

`uada_folder` serves every folder dataset: its builder config is made from the card and the
stored size (`builder_config`), and named by them (`<H>x<W>_<digest>` or `full_<digest>`, the
digest covering the card, its split files and the folder's real path). So a prepared folder is
reused by every command at that size, and a changed card, split file or image size is prepared
anew into `<data_dir>/uada_folder/<config>/`. (Images or labels changed after a folder was
prepared are not seen until then: delete that folder to prepare it again.)

The frames (`list_frames`):

- with the card's `splits`: the stems of each split file, in sorted order. A stem whose image is
  missing is a `DatasetCardError` naming the split file. An image of `train` without its label
  goes to the split `unlabelled`, which a target domain trains on
  (`uada.data.domains.training_split`); an image of `val` without its label is skipped and
  reported.
- without: every image with its label, split 3:1 by `common.hashed_split` (the MD5 of the image
  path; said in the log); images without a label go to `unlabelled`, labels without an image are
  skipped and reported.

Each label is decoded by the card's `label_encoding` (`read_label`: indices of a greyscale,
16-bit or palette PNG for `"index"`, colours for `"rgb"`) and mapped to the card's classes by
`FolderCard.map_label`. Index values the card does not know become 255 and are counted per split
in the preparation summary; a colour outside the palette (and `label_map`) stops the preparation
with a `DatasetCardError` naming the file and the colour. An image without its label (split
`unlabelled`) is stored with every pixel 255. Then, as for every uada builder
(`common.SegmentationBuilder`): a label of another size than its image is resized to it
(nearest) and reported, and both are resized to the config's size (image bilinear, label
nearest) unless it is `full`.
"""

import collections
import dataclasses
import posixpath

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from uada.data.builders import common
from uada.data.folder_card import DatasetCardError, FolderCard, describe_value
from uada.data.labels import IGNORE_LABEL

UNLABELLED = "unlabelled"  # the split of training images without a label


@dataclasses.dataclass
class FolderConfig(tfds.core.BuilderConfig):
    """The builder config of one folder dataset at one size (`builder_config` makes it).

    Args:
        card: the dataset's `FolderCard`.
        size: `(height, width)` every image and label is resized to, or None for each file's
            own size.
    """

    card: FolderCard | None = dataclasses.field(default=None, repr=False)
    size: tuple[int, int] | None = None


def builder_config(card, size=None):
    """The `FolderConfig` of `card` at `size` (`(height, width)`, or None for native size)."""
    size = None if size is None else (int(size[0]), int(size[1]))
    stored = "full" if size is None else f"{size[0]}x{size[1]}"
    return FolderConfig(
        name=f"{stored}_{card.digest[:16]}",
        card=card,
        size=size,
        description=f"{card.folder} ({card.path}), stored at {stored}.",
    )


@dataclasses.dataclass
class FolderReport(common.PreparationReport):
    """A `PreparationReport` that also counts, per split, the label values the card does not
    know (ignored as 255): `{split: {value: pixels}}` and `{split: {value: files}}`."""

    unknown: dict = dataclasses.field(default_factory=dict)
    unknown_files: dict = dataclasses.field(default_factory=dict)

    def ignore(self, split, unknown):
        """Counts a label file's unknown values `{value: pixels}` in `split`."""
        pixels = self.unknown.setdefault(split, collections.Counter())
        files = self.unknown_files.setdefault(split, collections.Counter())
        for value, count in unknown.items():
            pixels[value] += count
            files[value] += 1

    @property
    def notable(self):
        return super().notable or bool(self.unknown)

    def summary(self, name):
        lines = [super().summary(name)]
        for split, pixels in sorted(self.unknown.items()):
            lines.append(
                f"  {split}: ignored {sum(pixels.values())} pixels of label values the card does "
                f"not know: {describe_unknown(pixels, self.unknown_files[split])}"
            )
        return "\n".join(lines)


def describe_unknown(pixels, files):
    """Unknown label values as text, the most frequent first: `99 (1200 px in 3 files), ...`.

    Args:
        pixels, files: `{value: pixels}` and `{value: files}` (`collections.Counter`s).
    """
    return ", ".join(
        f"{describe_value(value)} ({count} px in {files[value]} file"
        f"{'s' if files[value] > 1 else ''})"
        for value, count in pixels.most_common()
    )


def files_of(card):
    """The `common.ManualFiles` of a folder dataset: its image and label folders."""
    components = [common.Component(card.img_dir), common.Component(card.ann_dir)]
    return common.ManualFiles(
        card.folder, components, name=card.folder, instructions=f"See {card.path}."
    )


def list_frames(card, paths):
    """The frames of each split of a folder dataset (see the module docstring).

    Args:
        card: the `FolderCard`.
        paths: every file of its image and label folders, relative to its folder
            (`files_of(card).paths()`).

    Returns:
        `(frames, skipped)`: `{split: [common.Frame, ...]}` (a frame of `unlabelled` has
        `label=None`) and `[(file, reason), ...]` of the files left out.

    Raises:
        DatasetCardError: a split file names stems without an image, or there is nothing to read.
    """
    images = _stems(paths, card.img_dir, card.img_suffix)
    labels = _stems(paths, card.ann_dir, card.seg_map_suffix)
    where = posixpath.join(card.img_dir, f"<stem>{card.img_suffix}")
    if not images:
        raise DatasetCardError(f"{card.path}: no image {where} in {card.folder}.")
    frames, unlabelled, skipped = {}, [], []
    if card.splits is not None:
        for split, stems in card.splits.items():
            missing = [stem for stem in stems if stem not in images]
            if missing:
                raise DatasetCardError(
                    f"{card.path}: `splits.{split}` ({card.split_files[split]}) names "
                    f"{len(missing)} stem{'s' if len(missing) > 1 else ''} without an image "
                    f"{where} in {card.folder}, e.g. {', '.join(repr(s) for s in missing[:3])}."
                )
            frames[split] = []
            for stem in sorted(dict.fromkeys(stems)):
                if stem in labels:
                    frames[split].append(common.Frame(images[stem], labels[stem], split))
                elif split == "train":
                    unlabelled.append(common.Frame(images[stem], None, UNLABELLED))
                else:
                    skipped.append((images[stem], "image without its label"))
    else:
        labelled = [
            common.Frame(images[stem], labels[stem], None) for stem in sorted(images)
            if stem in labels
        ]  # fmt: skip
        if len(labelled) < 2:
            raise DatasetCardError(
                f"{card.path}: without `splits`, the images with labels are split 3:1, which "
                f"needs at least 2 of them; found {len(labelled)} in {card.folder}."
            )
        frames = common.hashed_split(labelled)
        unlabelled = [
            common.Frame(images[stem], None, UNLABELLED) for stem in sorted(images)
            if stem not in labels
        ]  # fmt: skip
        skipped = [
            (labels[stem], "label without its image") for stem in sorted(set(labels) - set(images))
        ]
    if unlabelled:
        frames[UNLABELLED] = unlabelled
    return frames, skipped


def _stems(paths, folder, suffix):
    """`{stem: path}` of the paths `folder/<stem><suffix>` (a stem may hold subfolders)."""
    folder = posixpath.normpath(folder)
    prefix = "" if folder == "." else folder + "/"
    return {
        path[len(prefix) : len(path) - len(suffix)]: path
        for path in paths
        if path.startswith(prefix) and path.endswith(suffix) and len(path) > len(prefix + suffix)
    }


def read_label(card, data, file):
    """Decodes a label file's bytes by the card's `label_encoding` and maps it to classes.

    Returns:
        `(classes, unknown)` as `FolderCard.map_label` returns them.

    Raises:
        DatasetCardError: an `"index"` label is not a single-channel image.
        common.CorruptFileError: the file cannot be decoded.
    """
    if card.label_encoding == "rgb":
        return card.map_label(common.decode_image(data, file))
    try:
        raw = common.decode_label_indices(data, file)
    except common.CorruptFileError:
        raise
    except ValueError as error:
        raise DatasetCardError(
            f"{error}; {card.path} has `label_encoding` 'index' (for colour labels: 'rgb')."
        ) from error
    return card.map_label(raw)


def unknown_colours_error(card, file, unknown):
    """The `DatasetCardError` of an RGB label `file` with colours outside the palette."""
    colours = ", ".join(
        f"({describe_value(colour)}): {count} px"
        for colour, count in sorted(unknown.items(), key=lambda item: -item[1])[:5]
    )
    return DatasetCardError(
        f"{file}: colours not in the palette of {card.path} (`palette`): {colours}"
        f"{' ...' if len(unknown) > 5 else ''}. Add each colour to `palette` with its class, or "
        'map it in `label_map` ("r,g,b": a class index, or 255 to ignore it); labels must be '
        "saved losslessly (PNG)."
    )


class UadaFolder(common.SegmentationBuilder):
    """A folder dataset described by its dataset.json (`uada.data.folder_card`): labels mapped to
    the card's classes (255 ignored). Splits: the card's `train` / `val`, else a deterministic 3:1
    split; `unlabelled` holds the training images without a label."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Folder datasets described by their card."}
    BUILDER_CONFIGS = []
    DEFAULT_BUILDER_CONFIG_NAME = None
    REPORT = FolderReport
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
A folder dataset is read from its own folder, described by its dataset.json (uada.data.folder_card).
"""

    def _split_generators(self, dl_manager):
        card = self.builder_config.card
        self.info.metadata["manual_dir"] = str(dl_manager.manual_dir)
        files = files_of(card)
        frames, skipped = list_frames(card, files.paths())
        if card.splits is None:
            logging.info(
                "%s has no `splits`: its images with labels are split 3:1 by the MD5 of their "
                "paths, %d train / %d val.",
                card.path, len(frames["train"]), len(frames["val"]),
            )  # fmt: skip
        for file, reason in skipped:
            self.report.skip(file, reason)
        return {
            split: self._generate_examples(split_frames, files, split)
            for split, split_frames in frames.items()
            if split_frames
        }

    def decode_frame(self, frame, files, split):
        card = self.builder_config.card
        image = common.decode_image(files.read(frame.image), files.describe(frame.image))
        if frame.label is None:  # an unlabelled training image: every pixel ignored
            return image, np.full(image.shape[:2], IGNORE_LABEL, dtype=np.uint8)
        file = files.describe(frame.label)
        label, unknown = read_label(card, files.read(frame.label), file)
        if unknown and card.label_encoding == "rgb":
            raise unknown_colours_error(card, file, unknown)
        if unknown:
            self.report.ignore(split, unknown)
        return image, label
