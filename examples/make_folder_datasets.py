"""Writes a tiny two-domain folder dataset: the worked example of README, "Your own data".

    python examples/make_folder_datasets.py [--output=data/folder_example] [--seed=0]

Two domains of one small task, three classes (background, person, forklift) seen in a warehouse:

- `OUTPUT/simulator/`: the labelled source, rendered scenes in flat colours. JPEG images, labels
  as greyscale PNGs of class indices (`"label_encoding": "index"`), no split files: uada splits
  its images 3:1 deterministically.
- `OUTPUT/camera/`: the target, the same kind of scenes as a camera sees them (another light,
  colour cast, blur and sensor noise). JPEG images, labels as colour PNGs in the card's palette
  (`"label_encoding": "rgb"`), split files `train.txt` and `val.txt`; a quarter of the training
  images have no label, as a target needs none.

Each folder holds its card, `dataset.json`. Then:

    python -m uada.inspect_dataset data/folder_example/camera
    python -m uada.train --flagfile=experiments/folder_example.flags
    python -m uada.evaluate --workdir=workdirs/folder_example

Only NumPy and Pillow are used: the script shows the files uada reads, nothing of uada itself.
"""

import argparse
import json
import os

import numpy as np
from PIL import Image, ImageFilter

CLASSES = ["background", "person", "forklift"]
PALETTE = [[0, 0, 0], [220, 20, 60], [250, 170, 30]]
HEIGHT, WIDTH = 96, 128
NUM_SIMULATOR = 64
NUM_CAMERA_TRAIN, NUM_CAMERA_VAL = 48, 16


def scene(rng):
    """A scene's class map `[H, W]`: floor and wall, 1-3 persons, 0-2 forklifts."""
    label = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    rows, cols = np.mgrid[:HEIGHT, :WIDTH]
    for _ in range(rng.integers(0, 3)):  # forklift: a body and its mast
        x, y = rng.integers(0, WIDTH - 40), rng.integers(HEIGHT // 2, HEIGHT - 24)
        w, h = rng.integers(26, 40), rng.integers(16, 24)
        label[y : y + h, x : x + w] = 2
        label[max(0, y - 2 * h) : y, x + w - 5 : x + w - 2] = 2
    for _ in range(rng.integers(1, 4)):  # person: an upright ellipse and a head
        cx, cy = rng.integers(8, WIDTH - 8), rng.integers(HEIGHT // 3, HEIGHT - 16)
        rx, ry = rng.integers(4, 7), rng.integers(12, 18)
        label[((cols - cx) / rx) ** 2 + ((rows - cy) / ry) ** 2 <= 1] = 1
        label[(cols - cx) ** 2 + (rows - cy + ry + 3) ** 2 <= (rx - 1) ** 2] = 1
    return label


def render(label, rng, *, camera):
    """The image of a class map: flat colours (simulator) or as a camera sees them."""
    floor = np.linspace(0, 1, HEIGHT)[:, None, None] > 0.45
    background = np.where(floor, [150, 150, 140], [190, 195, 200]).astype(np.float64)
    image = np.broadcast_to(background, (HEIGHT, WIDTH, 3)).copy()
    colours = {1: [40, 90, 200], 2: [230, 190, 20]}  # workwear, a yellow forklift
    for class_id, colour in colours.items():
        shade = np.asarray(colour) * rng.uniform(0.85, 1.15)
        image[label == class_id] = shade
    if camera:  # dim warm light, a colour cast, a soft lens, sensor noise
        image = image * rng.uniform(0.5, 0.7) + np.array([40, 20, -10]) * rng.uniform(0.5, 1.5)
        image = np.asarray(
            Image.fromarray(image.clip(0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1))
        ).astype(np.float64)
        image += rng.normal(0, 12, image.shape)
    else:
        image += rng.normal(0, 3, image.shape)
    return Image.fromarray(image.clip(0, 255).astype(np.uint8))


def write_simulator(folder, rng):
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    os.makedirs(os.path.join(folder, "labels"), exist_ok=True)
    for i in range(NUM_SIMULATOR):
        label = scene(rng)
        render(label, rng, camera=False).save(os.path.join(folder, "images", f"{i:04d}.jpg"))
        Image.fromarray(label).save(os.path.join(folder, "labels", f"{i:04d}.png"))
    card = {
        "classes": CLASSES, "palette": PALETTE,
        "img_dir": "images", "ann_dir": "labels", "img_suffix": ".jpg", "seg_map_suffix": ".png",
        "label_encoding": "index",
    }  # fmt: skip
    _write_card(folder, card)


def write_camera(folder, rng):
    splits = {"train": [], "val": []}
    for split, count in (("train", NUM_CAMERA_TRAIN), ("val", NUM_CAMERA_VAL)):
        for i in range(count):
            stem = f"{split}/scene_{i:03d}"
            for sub in ("images", "labels"):
                os.makedirs(os.path.join(folder, sub, split), exist_ok=True)
            label = scene(rng)
            render(label, rng, camera=True).save(os.path.join(folder, "images", f"{stem}.jpg"))
            if split == "val" or i % 4:  # every fourth training image has no label
                colours = np.asarray(PALETTE, dtype=np.uint8)[label]
                Image.fromarray(colours).save(os.path.join(folder, "labels", f"{stem}.png"))
            splits[split].append(stem)
    for split, stems in splits.items():
        with open(os.path.join(folder, f"{split}.txt"), "w") as f:
            f.write("\n".join(stems) + "\n")
    card = {
        "classes": CLASSES, "palette": PALETTE,
        "img_dir": "images", "ann_dir": "labels", "img_suffix": ".jpg", "seg_map_suffix": ".png",
        "label_encoding": "rgb",
        "splits": {"train": "train.txt", "val": "val.txt"},
    }  # fmt: skip
    _write_card(folder, card)


def _write_card(folder, card):
    """`dataset.json`, one field a line."""
    fields = ",\n".join(
        f"  {json.dumps(name)}: {json.dumps(value)}" for name, value in card.items()
    )
    with open(os.path.join(folder, "dataset.json"), "w") as f:
        f.write("{\n" + fields + "\n}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default="data/folder_example", help="the folder to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scenes")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    write_simulator(os.path.join(args.output, "simulator"), rng)
    write_camera(os.path.join(args.output, "camera"), rng)
    print(f"Wrote {args.output}/simulator (source, index labels) and {args.output}/camera "
          "(target, RGB labels, split files)")  # fmt: skip


if __name__ == "__main__":
    main()
