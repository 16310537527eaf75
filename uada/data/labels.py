"""The classes a run predicts, their palette, and the per-dataset label lookup tables.

Every built-in dataset is mapped to the 19 Cityscapes train ids (0..18) through a lookup table of
256 entries indexed by the dataset's raw label value; every value that the table does not map
(including values outside a dataset's own range, such as GTA5's 34) becomes `IGNORE_LABEL` (255).
A folder dataset brings its own classes and palette in its card (`uada.data.folder_card`); a run's
`Classes` are `CITYSCAPES` or its source card's (`uada.data.domains.run_classes`).
"""

import dataclasses

import numpy as np

IGNORE_LABEL = 255
NUM_CLASSES = 19

CLASS_NAMES = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)

# Cityscapes colours of the 19 train ids, RGB.
PALETTE = np.array(
    [
        (128, 64, 128),
        (244, 35, 232),
        (70, 70, 70),
        (102, 102, 156),
        (190, 153, 153),
        (153, 153, 153),
        (250, 170, 30),
        (220, 220, 0),
        (107, 142, 35),
        (152, 251, 152),
        (70, 130, 180),
        (220, 20, 60),
        (255, 0, 0),
        (0, 0, 142),
        (0, 0, 70),
        (0, 60, 100),
        (0, 80, 100),
        (0, 0, 230),
        (119, 11, 32),
    ],
    dtype=np.uint8,
)


@dataclasses.dataclass(frozen=True)
class Classes:
    """The classes a run predicts: their names in class-index order and one RGB colour each.

    Args:
        names: the class names; class `i` is `names[i]`.
        palette: one `(r, g, b)` colour per class, in the same order.
    """

    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "palette", tuple(tuple(int(v) for v in c) for c in self.palette))
        if len(self.palette) != len(self.names):
            raise ValueError(
                f"`palette` must have one colour per class ({len(self.names)}). "
                f"Received: {len(self.palette)} colours"
            )

    def __len__(self):
        return len(self.names)

    @property
    def colors(self):
        """The palette as a uint8 array `(num_classes, 3)`."""
        return np.array(self.palette, dtype=np.uint8).reshape(-1, 3)


# The classes of every built-in dataset.
CITYSCAPES = Classes(CLASS_NAMES, PALETTE.tolist())

# Raw label value -> train id. Values not listed map to IGNORE_LABEL.
_CITYSCAPES = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
_MAPILLARY = {
    13: 0, 15: 1, 17: 2, 6: 3, 3: 4, 45: 5, 47: 5, 48: 6, 50: 7, 30: 8, 29: 9,
    27: 10, 19: 11, 20: 12, 21: 12, 22: 12, 55: 13, 61: 14, 54: 15, 58: 16, 57: 17, 52: 18,
}  # fmt: skip
_APOLLOSCAPE = {
    49: 0, 50: 1, 97: 2, 84: 3, 67: 4, 82: 5, 81: 6, 83: 7, 113: 8, 17: 10,
    36: 11, 164: 11, 37: 12, 165: 12, 33: 13, 161: 13, 38: 14, 166: 14, 39: 15, 167: 15,
    34: 17, 162: 17, 35: 18, 163: 18,
}  # fmt: skip

# GTA5 labels are Cityscapes label ids, so GTA5 shares the Cityscapes table.
_TABLES = {
    "cityscapes": _CITYSCAPES,
    "gta5": _CITYSCAPES,
    "mapillary": _MAPILLARY,
    "apolloscape": _APOLLOSCAPE,
}


def lookup_table(name):
    """Returns the 256-entry uint8 table mapping `name`'s raw label values to train ids.

    Args:
        name: one of `"cityscapes"`, `"gta5"`, `"mapillary"`, `"apolloscape"`.

    Returns:
        A `np.ndarray` of shape `(256,)` and dtype uint8; unmapped values are 255.
    """
    if name not in _TABLES:
        raise ValueError(f"`name` must be one of {sorted(_TABLES)}. Received: name={name!r}")
    table = np.full((256,), IGNORE_LABEL, dtype=np.uint8)
    for raw, train_id in _TABLES[name].items():
        table[raw] = train_id
    return table


def colorize(label_map, palette=PALETTE):
    """Colours a map of class indices with `palette`; ignored (255) pixels are black.

    Args:
        label_map: integer array of any shape `S`.
        palette: uint8 array `(num_classes, 3)`; defaults to the Cityscapes `PALETTE`
            (`Classes.colors` for a run's own classes).

    Returns:
        uint8 array of shape `S + (3,)`.
    """
    label_map = np.asarray(label_map)
    palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    colors = np.zeros((256, 3), dtype=np.uint8)
    colors[: len(palette)] = palette
    return colors[label_map.astype(np.int64) & 255]


# Weight of the palette colour in `overlay` (and `python -m uada.predict --overlay_alpha`).
OVERLAY_ALPHA = 0.5


def overlay(image, label_map, alpha=OVERLAY_ALPHA, palette=PALETTE):
    """Blends an image with the palette colours of its label map.

        overlay = round(alpha * palette[label] + (1 - alpha) * image)

    per pixel and channel (NumPy's `round`: halves to even); pixels labelled 255 (ignored) keep
    the image's colour.

    Args:
        image: uint8 (or real) RGB array `[..., H, W, 3]` in [0, 255].
        label_map: integer train ids `[..., H, W]`, the image's size.
        alpha: the palette's weight, in [0, 1]. Defaults to 0.5.
        palette: as in `colorize`; defaults to the Cityscapes `PALETTE`.

    Returns:
        uint8 array of the image's shape.
    """
    image = np.asarray(image)
    label_map = np.asarray(label_map)
    if image.shape != label_map.shape + (3,):
        raise ValueError(
            "`image` must be RGB `[..., H, W, 3]` of the size of `label_map` `[..., H, W]`. "
            f"Received: image.shape={image.shape}, label_map.shape={label_map.shape}"
        )
    if not 0 <= alpha <= 1:
        raise ValueError(f"`alpha` must be in [0, 1]. Received: alpha={alpha!r}")
    weight = np.where(label_map[..., None] == IGNORE_LABEL, 0.0, float(alpha))
    blended = weight * colorize(label_map, palette) + (1 - weight) * image.astype(np.float64)
    return np.round(blended).clip(0, 255).astype(np.uint8)
