"""The card of a folder dataset, `dataset.json`: read, checked, and applied to label values.

A folder dataset is a folder holding `dataset.json`, whose field names are those of
mmsegmentation's custom datasets:

```json
{
  "classes": ["background", "person", "forklift"],
  "palette": [[0, 0, 0], [220, 20, 60], [250, 170, 30]],
  "img_dir": "images", "ann_dir": "labels",
  "img_suffix": ".jpg", "seg_map_suffix": ".png",
  "label_encoding": "index",
  "label_map": {"7": 0, "24": 1, "99": 255},
  "reduce_zero_label": false,
  "splits": {"train": "train.txt", "val": "val.txt"}
}
```

The fields (required unless said otherwise):

- `classes`: the class names, in class-index order (1 to 255 distinct names).
- `palette`: one `[r, g, b]` colour per class (0..255 each).
- `img_dir`, `ann_dir`: the folders of images and labels, relative to the dataset's folder.
- `img_suffix`, `seg_map_suffix`: an image is `img_dir/<stem><img_suffix>` (PNG, JPEG, ...), its
  label `ann_dir/<stem><seg_map_suffix>` (lossless: not JPEG). A stem may hold subfolders
  (`frankfurt/frankfurt_000000_000294`).
- `label_encoding`: `"index"`: a label is a single-channel image (greyscale, 16-bit or palette
  PNG, read as indices, never as colours) of class indices, or of raw ids that `label_map` maps;
  `"rgb"`: a label is a colour image whose colours are the palette's.
- `label_map` (optional): raw value -> class index, or 255 to ignore it: `{"7": 0}` for
  `"index"`, colours `"r,g,b"` such as `{"0,0,0": 255}` for `"rgb"`.
- `reduce_zero_label` (optional, `"index"` only, default false), as in mmsegmentation: value 0 is
  ignored and every other value `v` continues as `v - 1` (255 stays ignored) before `label_map`.
- `splits` (optional): `{"train": FILE, "val": FILE}` (either or both), files of stems, one a
  line, relative to the folder. Without it every image with its label is split 3:1,
  deterministically (`uada.data.builders.folder`).

How a label value `v` becomes a class (`FolderCard.map_label`), the first rule that applies:

| encoding | value | class |
|---|---|---|
| `index` | 0 or 255, with `reduce_zero_label` | ignored (255); others continue as `v - 1` |
| `index` | a key of `label_map` | its class (255: ignored) |
| `index` | `v < len(classes)` | `v` |
| `index` | 255 | ignored |
| `index` | anything else | ignored, and counted as an unknown value |
| `rgb` | a key of `label_map` | its class (255: ignored) |
| `rgb` | a palette colour | its class |
| `rgb` | any other colour | unknown: preparation stops, naming the file and the colour |

An unknown colour means a wrong palette or lossy labels, which would silently corrupt the
training labels; an unknown index is common in raw ids (void classes) and is ignored.

Every problem with a card is a `DatasetCardError` whose message names the file and the field.
"""

import dataclasses
import hashlib
import json
import os

import numpy as np

from uada.data.labels import IGNORE_LABEL, Classes
from uada.names import DATASET_CARD

ENCODINGS = ("index", "rgb")
SPLITS = ("train", "val")
_REQUIRED = (
    "classes", "palette", "img_dir", "ann_dir", "img_suffix", "seg_map_suffix", "label_encoding",
)  # fmt: skip
_OPTIONAL = ("label_map", "reduce_zero_label", "splits")
# Label files must be lossless: a JPEG's compression invents values and colours.
_LOSSY_SUFFIXES = (".jpg", ".jpeg")


class DatasetCardError(ValueError):
    """A folder dataset that its card does not describe; the message names the file and field."""


@dataclasses.dataclass(frozen=True, eq=False)
class FolderCard:
    """A checked `dataset.json` (see the module docstring for the fields).

    Attributes:
        folder: the dataset's folder, as given (`~` expanded).
        path: the card's path.
        classes: the `uada.data.labels.Classes` of the card (`classes`, `palette`).
        img_dir, ann_dir, img_suffix, seg_map_suffix, label_encoding, reduce_zero_label: the
            card's fields.
        label_map: `{raw value: class index or 255}`; a raw value is an int for `"index"`, an
            `(r, g, b)` tuple for `"rgb"`.
        splits: `{split: [stem, ...]}` read from the split files, or None without `splits`.
        split_files: `{split: file}` as the card names them (`{}` without `splits`).
        digest: a SHA-256 of the card, its split files and the folder's real path: what a
            prepared copy of the dataset depends on besides its files.
    """

    folder: str
    path: str
    classes: Classes
    img_dir: str
    ann_dir: str
    img_suffix: str
    seg_map_suffix: str
    label_encoding: str
    label_map: dict
    reduce_zero_label: bool
    splits: dict | None
    split_files: dict
    digest: str

    def image_path(self, stem):
        return os.path.join(self.folder, self.img_dir, stem + self.img_suffix)

    def label_path(self, stem):
        return os.path.join(self.folder, self.ann_dir, stem + self.seg_map_suffix)

    def map_label(self, raw):
        """Maps raw label values to class indices (see the module docstring's table).

        Args:
            raw: integer array `(H, W)` of values (`"index"`), or uint8 `(H, W, 3)` colours
                (`"rgb"`).

        Returns:
            `(classes, unknown)`: uint8 `(H, W)` class indices and 255, and `{value: pixels}` of
            the values that are neither a class nor in `label_map` (ints, or `(r, g, b)` tuples).
        """
        raw = np.asarray(raw)
        if self.label_encoding == "rgb":
            if raw.ndim != 3 or raw.shape[-1] != 3:
                raise ValueError(f"`raw` must be (H, W, 3) colours. Received: shape {raw.shape}")
            keys = (raw[..., 0].astype(np.int64) << 16) | (raw[..., 1].astype(np.int64) << 8)
            keys |= raw[..., 2].astype(np.int64)
        else:
            keys = raw.astype(np.int64)
        values, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        mapped = np.empty(len(values), dtype=np.uint8)
        unknown = {}
        colours = {colour: i for i, colour in enumerate(self.classes.palette)}
        for i, key in enumerate(values.tolist()):
            value = ((key >> 16) & 255, (key >> 8) & 255, key & 255) if raw.ndim == 3 else key
            index = self._class_of(value, colours)
            if index is None:
                index = IGNORE_LABEL
                unknown[value] = int(counts[i])
            mapped[i] = index
        return mapped[inverse.reshape(keys.shape)], unknown

    def _class_of(self, value, colours):
        """The class of one raw value (255: ignored), or None for a value the card does not
        know."""
        if self.label_encoding == "rgb":
            return self.label_map.get(value, colours.get(value))
        if self.reduce_zero_label:
            if value in (0, IGNORE_LABEL):
                return IGNORE_LABEL
            value -= 1
        if value in self.label_map:
            return self.label_map[value]
        if 0 <= value < len(self.classes):
            return value
        return IGNORE_LABEL if value == IGNORE_LABEL else None


def describe_value(value):
    """A label value as the card writes it: `7` or `"0,0,0"`."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def has_card(folder):
    """Whether `folder` holds a dataset card."""
    return os.path.isfile(os.path.join(os.path.expanduser(folder), DATASET_CARD))


def read_card(folder):
    """Reads and checks the card of the folder dataset `folder`.

    Args:
        folder: the dataset's folder (the one holding `dataset.json`).

    Returns:
        A `FolderCard`.

    Raises:
        DatasetCardError: the card is missing, not JSON, or a field is missing, unknown or
            wrong; the message names the file and the field.
    """
    folder = os.path.expanduser(str(folder))
    path = os.path.join(folder, DATASET_CARD)
    if not os.path.isfile(path):
        raise DatasetCardError(
            f"{path} not found: a folder dataset is a folder holding its card {DATASET_CARD} "
            f"(README, 'Your own data'). Received: {folder!r}"
        )
    with open(path, "rb") as f:
        text = f.read()
    try:
        fields = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetCardError(f"{path}: not valid JSON ({error}).") from error
    check = _Checker(path)
    if not isinstance(fields, dict):
        check.fail(None, "must be a JSON object of fields", fields)
    missing = [name for name in _REQUIRED if name not in fields]
    if missing:
        raise DatasetCardError(
            f"{path}: missing field{'s' if len(missing) > 1 else ''} "
            f"{', '.join(f'`{name}`' for name in missing)} (required: {', '.join(_REQUIRED)})."
        )
    unknown = sorted(set(fields) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise DatasetCardError(
            f"{path}: unknown field{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(f'`{name}`' for name in unknown)} (fields: "
            f"{', '.join(_REQUIRED + _OPTIONAL)})."
        )
    encoding = fields["label_encoding"]
    if encoding not in ENCODINGS:
        check.fail("label_encoding", f"must be one of {list(ENCODINGS)}", encoding)
    classes = check.classes(fields["classes"])
    palette = check.palette(fields["palette"], classes, distinct=encoding == "rgb")
    for name in ("img_dir", "ann_dir", "img_suffix", "seg_map_suffix"):
        if not isinstance(fields[name], str) or (not fields[name] and name != "seg_map_suffix"):
            check.fail(name, "must be a non-empty string", fields[name])
    if fields["seg_map_suffix"].lower().endswith(_LOSSY_SUFFIXES):
        check.fail(
            "seg_map_suffix", "must name lossless label files (PNG): JPEG changes label values",
            fields["seg_map_suffix"],
        )  # fmt: skip
    for name in ("img_dir", "ann_dir"):
        if not os.path.isdir(os.path.join(folder, fields[name])):
            check.fail(name, f"must be a folder inside {folder}", fields[name])
    reduce_zero_label = fields.get("reduce_zero_label", False)
    if not isinstance(reduce_zero_label, bool):
        check.fail("reduce_zero_label", "must be true or false", reduce_zero_label)
    if reduce_zero_label and encoding == "rgb":
        check.fail("reduce_zero_label", "applies to label_encoding 'index' only", True)
    label_map = check.label_map(fields.get("label_map", {}), encoding, len(classes))
    splits, split_bytes = check.splits(fields.get("splits"), folder)
    digest = hashlib.sha256(text + split_bytes + os.path.realpath(folder).encode()).hexdigest()
    return FolderCard(
        folder=folder,
        path=path,
        classes=Classes(classes, palette),
        img_dir=fields["img_dir"],
        ann_dir=fields["ann_dir"],
        img_suffix=fields["img_suffix"],
        seg_map_suffix=fields["seg_map_suffix"],
        label_encoding=encoding,
        label_map=label_map,
        reduce_zero_label=reduce_zero_label,
        splits=splits,
        split_files=dict(fields.get("splits") or {}),
        digest=digest,
    )


class _Checker:
    """The checks of `read_card`, each failing with a message that names the file and field."""

    def __init__(self, path):
        self.path = path

    def fail(self, field, rule, received):
        where = f"`{field}` " if field else ""
        raise DatasetCardError(
            f"{self.path}: {where}{rule}. Received: {json.dumps(received)[:200]}"
        )

    def classes(self, classes):
        if (
            not isinstance(classes, list)
            or not 1 <= len(classes) <= IGNORE_LABEL
            or not all(isinstance(name, str) and name for name in classes)
        ):
            self.fail("classes", f"must be a list of 1 to {IGNORE_LABEL} class names", classes)
        repeated = sorted({name for name in classes if classes.count(name) > 1})
        if repeated:
            self.fail("classes", f"must not repeat a name ({', '.join(repeated)})", classes)
        return classes

    def palette(self, palette, classes, *, distinct):
        if not isinstance(palette, list) or len(palette) != len(classes):
            count = len(palette) if isinstance(palette, list) else "no"
            self.fail(
                "palette",
                f"must have one colour per class: {count} colours for {len(classes)} classes",
                palette,
            )
        for i, colour in enumerate(palette):
            if not _is_colour(colour):
                self.fail(f"palette[{i}]", "must be [r, g, b] with integers 0..255", colour)
        if distinct:
            seen = {}
            for name, colour in zip(classes, palette, strict=True):
                if tuple(colour) in seen:
                    self.fail(
                        "palette",
                        f"gives classes '{seen[tuple(colour)]}' and '{name}' the same colour; "
                        "label_encoding 'rgb' needs a colour per class",
                        colour,
                    )
                seen[tuple(colour)] = name
        return [tuple(colour) for colour in palette]

    def label_map(self, label_map, encoding, num_classes):
        if not isinstance(label_map, dict):
            self.fail("label_map", "must be an object of raw value -> class index", label_map)
        mapped = {}
        for key, value in label_map.items():
            if encoding == "rgb":
                parts = key.split(",")
                digits = all(p.strip().isdigit() for p in parts)
                raw = tuple(int(p) for p in parts) if digits else ()
                if not _is_colour(list(raw)):
                    self.fail(
                        "label_map",
                        f"with label_encoding 'rgb' has colour keys \"r,g,b\" (0..255), such as "
                        f'"0,0,0"; key {key!r} is not one',
                        label_map,
                    )
            else:
                if not key.strip().isdigit():
                    self.fail(
                        "label_map",
                        f'has raw label values as keys, such as "7"; key {key!r} is not one',
                        label_map,
                    )
                raw = int(key)
            if not (isinstance(value, int) and not isinstance(value, bool)) or not (
                0 <= value < num_classes or value == IGNORE_LABEL
            ):
                self.fail(
                    f"label_map[{key!r}]",
                    f"must be a class index 0..{num_classes - 1} or {IGNORE_LABEL} (ignored)",
                    value,
                )
            mapped[raw] = value
        return mapped

    def splits(self, splits, folder):
        """`({split: [stem, ...]}, the split files' bytes)`, or `(None, b"")` without splits."""
        if splits is None:
            return None, b""
        if not isinstance(splits, dict) or not splits or set(splits) - set(SPLITS):
            self.fail("splits", f"must map {' and/or '.join(SPLITS)} to files of stems", splits)
        stems, data = {}, b""
        for split, name in splits.items():
            file = os.path.join(folder, name) if isinstance(name, str) and name else None
            if file is None or not os.path.isfile(file):
                self.fail(f"splits.{split}", f"must name a file of stems inside {folder}", name)
            with open(file, "rb") as f:
                content = f.read()
            data += content
            lines = [line.strip() for line in content.decode("utf-8").splitlines()]
            stems[split] = [line for line in lines if line]
            if not stems[split]:
                self.fail(f"splits.{split}", f"names an empty file, {file}", name)
        return stems, data


def _is_colour(colour):
    return (
        isinstance(colour, list | tuple)
        and len(colour) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in colour)
    )
