"""The demo domains written to disk: the GTA5 and Cityscapes folder layouts (`generate`) and each
domain's pixel frequency per class."""

import json
import pathlib

import numpy as np
from PIL import Image

from uada.data.demo_generator.scene import check_image_size, draw_example
from uada.data.demo_generator.styles import DOMAINS, shift_factors
from uada.data.labels import CLASS_NAMES, IGNORE_LABEL, PALETTE, lookup_table

# Cityscapes folder layouts: split -> cities.
TARGET_CITIES = {"train": ("alderton", "brackley"), "val": ("carwick",)}
UNSEEN_CITIES = {"train": ("eastmoor",), "val": ("dunmore",)}


def _label_ids():
    """train id -> Cityscapes label id (the inverse of the Cityscapes lookup table); 255 -> 0."""
    table = lookup_table("cityscapes")
    inverse = np.zeros((256,), dtype=np.uint8)
    for raw in range(255, -1, -1):  # the smallest raw id wins where several map to one train id
        if table[raw] != IGNORE_LABEL:
            inverse[table[raw]] = raw
    inverse[IGNORE_LABEL] = 0  # "unlabeled"
    return inverse


def _label_palette():
    """The 768-entry PNG palette of GTA5-style label files: label id -> Cityscapes colour."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    table = lookup_table("cityscapes")
    mapped = table != IGNORE_LABEL
    palette[mapped] = PALETTE[table[mapped]]
    return palette.reshape(-1).tolist()


def _save_png(array, path, palette=None):
    """Writes uint8 RGB `[H, W, 3]` or one channel `[H, W]`; with `palette`, a palette PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette is None:
        image = Image.fromarray(np.ascontiguousarray(array))
    else:
        # Built from raw bytes so that the pixel values stay the palette indices.
        image = Image.frombytes("P", (array.shape[1], array.shape[0]), array.tobytes())
        image.putpalette(palette)
    image.save(path, format="PNG")


def generate(
    root,
    *,
    seed=0,
    image_size=(128, 256),
    num_source=300,
    num_target_train=200,
    num_target_val=100,
    num_unseen_train=20,
    num_unseen_val=100,
    shift=("full",),
):
    """Writes the three demo domains under `root` (layouts in the module docstring).

    The files depend only on the arguments: the same seed writes identical bytes. Also writes
    `root/class_frequencies.json` (`class_frequencies`: each domain's pixel frequency per class
    over all of its frames) and `root/shift.json` (the shift's factors).

    Args:
        root: output folder (created if needed); gets `source/`, `target/` and `unseen/`.
        seed: integer seed.
        image_size: `(height, width)` of every image.
        num_source: number of source frames (GTA5 layout; the builder splits them 3:1 train/val).
        num_target_train: number of target training frames.
        num_target_val: number of target validation frames.
        num_unseen_train: number of unseen-domain training frames (written so that the Cityscapes
            builder finds both splits; uada never trains on them).
        num_unseen_val: number of unseen-domain validation frames.
        shift: the shift factors between the source and the other domains (`shift_factors`).
            Defaults to every factor.

    Returns:
        A dict `{"source": path, "target": path, "unseen": path}` of the three domain folders.
    """
    for name, value in (
        ("num_source", num_source),
        ("num_target_train", num_target_train),
        ("num_target_val", num_target_val),
        ("num_unseen_train", num_unseen_train),
        ("num_unseen_val", num_unseen_val),
    ):
        if int(value) != value or value < 0:
            raise ValueError(f"`{name}` must be a non-negative integer. Received: {name}={value!r}")
    image_size = check_image_size(image_size)
    factors = shift_factors(shift)
    root = pathlib.Path(root)
    label_ids = _label_ids()
    palette = _label_palette()
    pixels = {domain: np.zeros((256,), np.int64) for domain in DOMAINS}

    source = root / "source"
    for i in range(num_source):
        image, label = draw_example("source", seed, i, image_size, factors)
        pixels["source"] += np.bincount(label.reshape(-1), minlength=256)
        _save_png(image, source / "images" / f"{i + 1:05d}.png")
        _save_png(label_ids[label], source / "labels" / f"{i + 1:05d}.png", palette)

    index = 0  # one running index per domain, so train and val frames differ
    for domain, cities, counts in (
        ("target", TARGET_CITIES, {"train": num_target_train, "val": num_target_val}),
        ("unseen", UNSEEN_CITIES, {"train": num_unseen_train, "val": num_unseen_val}),
    ):
        for split in ("train", "val"):
            for i in range(counts[split]):
                city = cities[split][i % len(cities[split])]
                stem = f"{city}_{i:06d}_000019"
                image, label = draw_example(domain, seed, index, image_size, factors)
                pixels[domain] += np.bincount(label.reshape(-1), minlength=256)
                index += 1
                folder = root / domain
                _save_png(image, folder / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
                _save_png(
                    label_ids[label],
                    folder / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png",
                )
        index = 0
    frequencies = {domain: _frequencies(pixels[domain]) for domain in DOMAINS}
    (root / CLASS_FREQUENCIES_FILE).write_text(json.dumps(frequencies, indent=2) + "\n")
    (root / "shift.json").write_text(json.dumps({"shift": list(factors)}) + "\n")
    return {domain: root / domain for domain in DOMAINS}


CLASS_FREQUENCIES_FILE = "class_frequencies.json"


def _frequencies(counts):
    """Pixel counts per train id (255 = ignore) -> `{class name: fraction, "ignore": fraction}`."""
    total = max(int(counts.sum()), 1)
    result = {name: counts[i] / total for i, name in enumerate(CLASS_NAMES)}
    result["ignore"] = counts[IGNORE_LABEL] / total
    return {name: float(value) for name, value in result.items()}


def class_frequencies(root):
    """Each domain's pixel frequency per class, as `generate` measured and wrote it.

    Args:
        root: a folder written by `generate`.

    Returns:
        `{domain: {class name: fraction of the domain's pixels, ..., "ignore": fraction}}`.

    Raises:
        FileNotFoundError: `root` holds no `class_frequencies.json` (not written by `generate`).
    """
    path = pathlib.Path(root) / CLASS_FREQUENCIES_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {root} was not written by `uada.data.demo_generator.generate`."
        )
    return json.loads(path.read_text())


def format_class_frequencies(frequencies):
    """A Markdown table of `class_frequencies`' result: one row per class, % of pixels."""
    domains = list(frequencies)
    lines = [
        "| class | " + " | ".join(f"{d} (%)" for d in domains) + " |",
        "|---|" + "---:|" * len(domains),
    ]
    for name in (*CLASS_NAMES, "ignore"):
        values = " | ".join(f"{100 * frequencies[d][name]:.2f}" for d in domains)
        lines.append(f"| {name} | {values} |")
    return "\n".join(lines) + "\n"
