"""What every uada dataset builder shares: configs, file discovery, decoding, mapping, accounting.

Each dataset module (`gta5/`, `cityscapes/`, ...) only says where its files are and how an image is
paired with its label; `SegmentationBuilder` does the rest, in this order for every frame:

1. read the image and the label from an extracted folder or from the owners' zip;
2. decode the image as RGB and the label as **indices** with PIL (`tf.io.decode_png` would return a
   palette PNG's colours), map the raw ids to the 19 train ids through the dataset's
   `lookup_table` once (any value outside the table becomes 255);
3. resize a label whose size differs from its image to the image (nearest) and report it;
4. resize to the config's size (image bilinear, label nearest) unless the config is `"full"`.

Images without a label are skipped and reported. A corrupt or truncated file raises
`CorruptFileError` naming it, unless the builder was created with `skip_corrupt=True` (then it is
skipped and counted). Preparation ends with a logged summary (absl logging): examples per split,
skipped and repaired files.

The TFDS test harness forbids `os` and `open` in builder modules, so files are reached through
`tf.io.gfile` only.
"""

import collections
import dataclasses
import fnmatch
import hashlib
import inspect
import io
import posixpath
import zipfile

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging
from PIL import Image

from uada.data.labels import IGNORE_LABEL, lookup_table

# The training resolution of the paper (H, W).
TRAIN_SIZE = (384, 768)


@dataclasses.dataclass
class SegmentationConfig(tfds.core.BuilderConfig):
    """A builder config: the stored resolution.

    Args:
        size: `(height, width)` every image and label is resized to, or `None` to keep each file's
            native resolution.
    """

    size: tuple[int, int] | None = None


CONFIGS = (
    SegmentationConfig(
        name="384x768",
        size=TRAIN_SIZE,
        description="Images resized to 384x768 (bilinear), labels resized with nearest neighbour.",
    ),
    SegmentationConfig(
        name="full",
        size=None,
        description="Native resolution, for evaluation at label resolution.",
    ),
)


class CorruptFileError(ValueError):
    """An image or label file that cannot be decoded (corrupt, truncated or not an image)."""


@dataclasses.dataclass(frozen=True)
class Component:
    """One part of a dataset as its owners distribute it: an extracted folder or its zip(s).

    Args:
        folder: path, relative to the manual directory, of the extracted folder; `"."` is the
            manual directory itself.
        zips: glob pattern (relative to the manual directory) of the zips whose members start with
            `folder/`; `None` when the part is only read extracted.
        required: whether a missing component is an error (else the dataset may lack it, e.g. a
            split that is not downloaded).
    """

    folder: str
    zips: str | None = None
    required: bool = True


@dataclasses.dataclass(frozen=True)
class Frame:
    """An image and its label, as paths relative to the manual directory (or inside a zip)."""

    image: str
    label: str
    split: str | None


@dataclasses.dataclass
class PreparationReport:
    """What preparation skipped and repaired, and how many examples each split received."""

    examples: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    skipped: list = dataclasses.field(default_factory=list)  # (file, reason)
    repaired: list = dataclasses.field(default_factory=list)  # (file, what was done)

    def skip(self, file, reason):
        logging.warning("Skipped %s: %s", file, reason)
        self.skipped.append((file, reason))

    def repair(self, file, what):
        logging.warning("Repaired %s: %s", file, what)
        self.repaired.append((file, what))

    @property
    def notable(self):
        """Whether the summary reports something a user should see (a skipped or repaired file)."""
        return bool(self.skipped or self.repaired)

    def summary(self, name):
        """Returns the multi-line summary logged at the end of preparation."""
        splits = ", ".join(f"{split}={n}" for split, n in sorted(self.examples.items()))
        lines = [
            f"{name}: prepared {sum(self.examples.values())} examples ({splits or 'none'}); "
            f"skipped {len(self.skipped)} files, repaired {len(self.repaired)} files."
        ]
        lines += [f"  skipped {file}: {reason}" for file, reason in self.skipped]
        lines += [f"  repaired {file}: {what}" for file, what in self.repaired]
        return "\n".join(lines)


class ManualFiles:
    """The files of a dataset's manual directory, from extracted folders or from the owners' zips.

    An extracted folder takes precedence over the zips of the same component; a zip is read only
    when its folder is absent.

    Args:
        manual_dir: the manual directory.
        components: the `Component`s to list.
        name: the dataset name, for messages.
        instructions: how to download the dataset, appended to the error for a missing component.
    """

    def __init__(self, manual_dir, components, *, name, instructions):
        self.manual_dir = str(manual_dir).rstrip("/")
        self._members = {}  # relative path -> (zip path or None, member name)
        self._zips = {}
        for component in components:
            found = self._add_folder(component.folder) or self._add_zips(component)
            if component.required and not found:
                looked = [f"the folder {self._join(component.folder)}"]
                if component.zips:
                    looked.append(f"zips matching {self._join(component.zips)}")
                raise FileNotFoundError(
                    f"{name}: missing `{component.folder}/` in the manual directory. Looked for "
                    f"{' and '.join(looked)}.\n{instructions}"
                )

    def _join(self, relative):
        return self.manual_dir if relative == "." else f"{self.manual_dir}/{relative}"

    def _add_folder(self, folder):
        root = self._join(folder)
        if not tf.io.gfile.isdir(root):
            return False
        for dirpath, _, filenames in tf.io.gfile.walk(root):
            # `walk` yields paths that start with `root`, itself `manual_dir/folder`.
            relative_dir = str(dirpath).replace("\\", "/")[len(self.manual_dir) + 1 :]
            for filename in filenames:
                self._members[posixpath.join(relative_dir, filename)] = (None, None)
        return True

    def _add_zips(self, component):
        if component.zips is None or not tf.io.gfile.isdir(self.manual_dir):
            return False
        prefix = "" if component.folder == "." else component.folder.rstrip("/") + "/"
        found = False
        for filename in sorted(tf.io.gfile.listdir(self.manual_dir)):
            if not fnmatch.fnmatch(filename, component.zips):
                continue
            path = self._join(filename)
            for member in self._zip(path).namelist():
                if member.startswith(prefix) and not member.endswith("/"):
                    self._members[member] = (path, member)
                    found = True
        return found

    def _zip(self, path):
        if path not in self._zips:
            self._zips[path] = zipfile.ZipFile(tf.io.gfile.GFile(path, "rb"))
        return self._zips[path]

    def paths(self):
        """Returns every listed path, relative to the manual directory, sorted."""
        return sorted(self._members)

    def describe(self, path):
        """Returns where `path` lives, for messages: a file path or `zip:member`."""
        archive, member = self._members.get(path, (None, None))
        return f"{archive}:{member}" if archive else self._join(path)

    def read(self, path):
        """Returns the bytes of `path` (relative to the manual directory)."""
        archive, member = self._members.get(path, (None, None))
        if archive:
            return self._zip(archive).read(member)
        with tf.io.gfile.GFile(self._join(path), "rb") as f:
            return f.read()

    def close(self):
        for archive in self._zips.values():
            archive.close()
        self._zips.clear()


def _open_image(data, file):
    """Fully decodes `data` with PIL; raises `CorruptFileError` naming `file` if it cannot."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise CorruptFileError(
            f"Cannot decode {file}: {error}. The file is corrupt or truncated; download it again, "
            "or create the builder with `skip_corrupt=True` to skip such files (they are counted "
            "in the preparation summary)."
        ) from error
    return image


def decode_image(data, file):
    """Decodes an image file's bytes to RGB.

    Args:
        data: the encoded bytes (PNG, JPEG, ...).
        file: the file's name, for messages.

    Returns:
        uint8 array `(H, W, 3)`.
    """
    return np.asarray(_open_image(data, file).convert("RGB"), dtype=np.uint8)


def decode_label_indices(data, file):
    """Decodes a label file's bytes to its raw ids: a palette PNG gives its indices, not colours.

    Args:
        data: the encoded bytes of a palette ("P"), greyscale ("L") or 16-bit greyscale PNG.
        file: the file's name, for messages.

    Returns:
        integer array `(H, W)` of raw label ids.
    """
    image = _open_image(data, file)
    if image.mode not in ("P", "L", "I", "I;16", "I;16B", "I;16L"):
        raise ValueError(
            f"Label file {file} must be a single-channel (palette or greyscale) image of ids. "
            f"Received: mode={image.mode!r}"
        )
    return np.asarray(image)


def to_train_ids(raw, table):
    """Maps raw label ids to train ids through a 256-entry `table`; ids outside it become 255.

    Args:
        raw: integer array of raw ids, any shape.
        table: uint8 array `(256,)` from `uada.data.labels.lookup_table`.

    Returns:
        uint8 array of train ids (0..18, 255), the shape of `raw`.
    """
    raw = np.asarray(raw)
    if raw.dtype == np.uint8:
        return table[raw]
    inside = (raw >= 0) & (raw < table.shape[0])
    mapped = table[np.clip(raw, 0, table.shape[0] - 1).astype(np.int64)]
    return np.where(inside, mapped, IGNORE_LABEL).astype(np.uint8)


def resize_image(image, size):
    """Resizes a uint8 `(H, W, 3)` image to `size = (height, width)`, bilinear."""
    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize(size[::-1], Image.Resampling.BILINEAR))


def resize_label(label, size):
    """Resizes a uint8 `(H, W)` label map to `size = (height, width)`, nearest neighbour."""
    if label.shape[:2] == tuple(size):
        return label
    return np.asarray(Image.fromarray(label).resize(size[::-1], Image.Resampling.NEAREST))


def hashed_split(frames, *, max_train=None, max_val=None):
    """A deterministic 3:1 split of frames that come without the owners' split.

    Frames are ordered by the MD5 of their image path (stable across machines and library
    versions); the first `n_val = min(max_val, (n + 2) // 4)` are `val`, the next
    `min(max_train, n - n_val)` are `train` (no bound where `None`). So a small dataset is split
    3:1 (4 frames: 3 / 1; 2 frames: 1 / 1).

    Returns:
        `{"train": [...], "val": [...]}`, each sorted by image path.
    """
    ordered = sorted(frames, key=lambda frame: hashlib.md5(frame.image.encode()).hexdigest())
    num_val = (len(ordered) + 2) // 4
    num_val = num_val if max_val is None else min(max_val, num_val)
    num_train = len(ordered) - num_val
    num_train = num_train if max_train is None else min(max_train, num_train)
    return {
        "train": sorted(ordered[num_val : num_val + num_train], key=lambda frame: frame.image),
        "val": sorted(ordered[:num_val], key=lambda frame: frame.image),
    }


def pair_frames(paths, image_pattern, label_pattern, report):
    """Pairs image and label paths whose patterns' named groups (other than `split`) agree.

    Args:
        paths: relative paths to consider.
        image_pattern: compiled regex matching image paths (searched, not anchored); an optional
            `split` group names the owners' split.
        label_pattern: compiled regex matching label paths with the same named groups.
        report: a `PreparationReport`; images without a label and labels without an image are
            skipped and reported.

    Returns:
        list of `Frame`s, sorted by image path.
    """
    images, labels = {}, {}
    for path in paths:
        for pattern, found in ((image_pattern, images), (label_pattern, labels)):
            match = pattern.search(path)
            if match is None:
                continue
            key = tuple(sorted(match.groupdict().items()))
            if key in found:
                raise ValueError(
                    f"Two files are the same frame: {found[key][0]} and {path}. Keep only one "
                    "of them in the manual directory."
                )
            found[key] = (path, match.groupdict().get("split"))
    frames = []
    for key, (image, split) in sorted(images.items(), key=lambda item: item[1]):
        if key in labels:
            frames.append(Frame(image=image, label=labels[key][0], split=split))
        else:
            report.skip(image, "image without its label")
    for key in sorted(set(labels) - set(images)):
        report.skip(labels[key][0], "label without its image")
    return frames


class SegmentationBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of uada's manual-download segmentation builders (not registered itself).

    A subclass's docstring is the dataset's description. It sets `LABEL_TABLE` (a `lookup_table`
    name), `COMPONENTS`, `IMAGE_PATTERN`, `LABEL_PATTERN`, `SPLIT_NAMES` (owners' split name ->
    TFDS split name), `HOMEPAGE`, `CITATION` and `MANUAL_DOWNLOAD_INSTRUCTIONS`, and overrides
    `assign_splits` when the split is not in the paths.

    After `download_and_prepare` has generated the data, `report` holds its `PreparationReport`.

    Each split is stored and read in file order (its frames sorted by path; TFDS's
    `disable_shuffling`), so `split[:N]` or `take(N)` is the split's first N files. Data prepared
    by version 1.0.0 (hash order) is not reused: loading prepares version 1.1.0 anew.

    Features: `image` uint8 `(H, W, 3)`, `label` uint8 `(H, W, 1)` train ids 0..18 and 255
    (PNG-encoded, lossless), `file_name` the image's base name. With the `"384x768"` config
    `H, W = 384, 768`; with `"full"` they are each file's own.

    Args:
        skip_corrupt: if True, corrupt or truncated files are skipped and counted in the summary
            instead of raising `CorruptFileError`.
        **kwargs: passed to `tfds.core.GeneratorBasedBuilder` (`data_dir`, `config`, `version`).
    """

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: train ids stored, two resolutions.",
        "1.1.0": "Examples stored in file order (sorted paths), not in the hash order of keys.",
    }
    BUILDER_CONFIGS = list(CONFIGS)
    DEFAULT_BUILDER_CONFIG_NAME = CONFIGS[0].name

    LABEL_TABLE = None
    REPORT = PreparationReport
    COMPONENTS = ()
    IMAGE_PATTERN = None
    LABEL_PATTERN = None
    SPLIT_NAMES = {}
    HOMEPAGE = None
    CITATION = ""

    def __init__(self, *, skip_corrupt=False, **kwargs):
        self.skip_corrupt = bool(skip_corrupt)
        self.report = None
        super().__init__(**kwargs)

    def _info(self):
        height, width = self.builder_config.size or (None, None)
        return self.dataset_info_from_configs(
            description=inspect.cleandoc(type(self).__doc__ or self.name),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(height, width, 3), dtype=np.uint8),
                    "label": tfds.features.Image(
                        shape=(height, width, 1), dtype=np.uint8, encoding_format="png"
                    ),
                    "file_name": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "label"),
            # File order (each split's frames sorted by path), not TFDS's hash order of the
            # keys: the first N examples are the first N files, as the original evaluated.
            disable_shuffling=True,
            # Records the manual directory the data was prepared from (see `prepared_from`).
            metadata=tfds.core.MetadataDict(),
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
        )

    def _download_and_prepare(self, dl_manager, download_config):
        self.report = self.REPORT()
        super()._download_and_prepare(dl_manager, download_config)
        # A summary with skipped or repaired files is a warning, so that it shows by default.
        log = logging.warning if self.report.notable else logging.debug
        log("%s", self.report.summary(self.name))

    def prepared_from(self):
        """Returns the manual directory this dataset was prepared from, or None if unprepared."""
        return self.info.metadata.get("manual_dir") if self.info.metadata else None

    def _split_generators(self, dl_manager):
        self.info.metadata["manual_dir"] = str(dl_manager.manual_dir)
        files = ManualFiles(
            dl_manager.manual_dir,
            self.COMPONENTS,
            name=self.name,
            instructions=self.MANUAL_DOWNLOAD_INSTRUCTIONS,
        )
        frames = pair_frames(files.paths(), self.IMAGE_PATTERN, self.LABEL_PATTERN, self.report)
        if not frames:
            raise FileNotFoundError(
                f"{self.name}: found no image with its label in {files.manual_dir} (images must "
                f"match {self.IMAGE_PATTERN.pattern!r}, labels {self.LABEL_PATTERN.pattern!r}).\n"
                f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}"
            )
        splits = self.assign_splits(frames, files)
        return {
            split: self._generate_examples(split_frames, files, split)
            for split, split_frames in splits.items()
            if split_frames
        }

    def assign_splits(self, frames, files):
        """Returns `{tfds split name: [Frame, ...]}`; by default from the paths' `split` group.

        Args:
            frames: the paired `Frame`s, sorted by image path.
            files: the `ManualFiles`, to read split files from.
        """
        del files  # The default reads the split from the paths.
        splits = collections.defaultdict(list)
        for frame in frames:
            splits[self.SPLIT_NAMES[frame.split]].append(frame)
        return dict(splits)

    def decode_frame(self, frame, files, split):
        """Returns a frame's `(image, label)`: RGB uint8 `(H, W, 3)` and train ids uint8 `(H, W)`
        (the label may have another size: it is then resized to the image and reported).

        Args:
            frame: a `Frame`.
            files: the `ManualFiles` to read it from.
            split: the TFDS split it goes to.
        """
        del split  # Every split of a real dataset is decoded alike.
        image = decode_image(files.read(frame.image), files.describe(frame.image))
        raw = decode_label_indices(files.read(frame.label), files.describe(frame.label))
        return image, to_train_ids(raw, lookup_table(self.LABEL_TABLE))

    def _generate_examples(self, frames, files, split):
        size = self.builder_config.size
        try:
            for frame in frames:
                try:
                    image, label = self.decode_frame(frame, files, split)
                except CorruptFileError as error:
                    if not self.skip_corrupt:
                        raise
                    self.report.skip(frame.image, f"corrupt file ({error})")
                    continue
                if label.shape != image.shape[:2]:
                    self.report.repair(
                        frame.label,
                        f"label size {label.shape[1]}x{label.shape[0]} differs from its image's "
                        f"{image.shape[1]}x{image.shape[0]}; resized to the image (nearest)",
                    )
                    label = resize_label(label, image.shape[:2])
                if size is not None:
                    image, label = resize_image(image, size), resize_label(label, size)
                self.report.examples[split] += 1
                yield (
                    frame.image,
                    {
                        "image": image,
                        "label": label[..., None],
                        "file_name": posixpath.basename(frame.image),
                    },
                )
        finally:
            files.close()
