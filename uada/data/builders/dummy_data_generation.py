r"""Writes the builders' `dummy_data/` folders: tiny files in each dataset's real layout.

Run once from the repository root (the output is committed):

    python -m uada.data.builders.dummy_data_generation

Every label is a 16x32 map whose left half is one raw id and right half another (see `_LABELS`), so
tests know the train ids to expect. GTA5 also holds a label smaller than its image (frame 3, to be
resized), a raw id 34 (outside the table, to become 255) and an image without its label (frame 5, to
be skipped). Images are random RGB noise from a fixed seed.
"""

import io
import pathlib
import zipfile

import numpy as np
import scipy.io
from PIL import Image

from uada.data.labels import PALETTE

HERE = pathlib.Path(__file__).resolve().parent
HEIGHT, WIDTH = 16, 32

# (left half raw id, right half raw id) per dataset: one mapped id and one unmapped or mapped id.
_LABELS = {
    "gta5": (7, 34),  # road -> 0, 34 is outside the table -> 255
    "cityscapes": (26, 0),  # car -> 13, unlabeled -> 255
    "mapillary": (13, 27),  # road -> 0, sky -> 10
    "apolloscape": (33, 113),  # car -> 13, vegetation -> 8
}


def _png(array, palette=False):
    image = Image.fromarray(array)
    if palette:
        # A palette PNG as GTA5 and Mapillary distribute them: indices, with colours in the palette.
        image = image.convert("L").convert("P")
        image.putpalette(np.resize(PALETTE, (256, 3)).ravel().tolist())
        image.putdata(array.ravel().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _jpg(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=50)
    return buffer.getvalue()


def _image(rng, height=HEIGHT, width=WIDTH):
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def label_map(dataset, height=HEIGHT, width=WIDTH):
    """The raw label map written for `dataset`: left half and right half ids from `_LABELS`."""
    left, right = _LABELS[dataset]
    label = np.full((height, width), right, dtype=np.uint8)
    label[:, : width // 2] = left
    return label


def _write(root, files):
    """Writes `{relative path: bytes}` under `root`."""
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _zip(path, files):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative, data in sorted(files.items()):
            archive.writestr(relative, data)


def gta5(rng):
    files = {}
    for frame in range(1, 6):
        files[f"images/{frame:05d}.png"] = _png(_image(rng))
    for frame in range(1, 5):
        size = (HEIGHT // 2, WIDTH // 2) if frame == 3 else (HEIGHT, WIDTH)
        files[f"labels/{frame:05d}.png"] = _png(label_map("gta5", *size), palette=True)
    root = HERE / "gta5" / "dummy_data"
    _write(root, files)
    split = {"trainIds": np.array([[1], [2]]), "valIds": np.array([[3]]), "testIds": [[4], [5]]}
    scipy.io.savemat(root / "split.mat", split)


def cityscapes(rng):
    files = {}
    for split, city, frame in (
        ("train", "aachen", "aachen_000000_000019"),
        ("train", "bremen", "bremen_000001_000019"),
        ("val", "frankfurt", "frankfurt_000000_000294"),
    ):
        files[f"leftImg8bit/{split}/{city}/{frame}_leftImg8bit.png"] = _png(_image(rng))
        label = label_map("cityscapes")
        files[f"gtFine/{split}/{city}/{frame}_gtFine_labelIds.png"] = _png(label)
        # Other gtFine files in the same folder, which must not be read as labels.
        files[f"gtFine/{split}/{city}/{frame}_gtFine_instanceIds.png"] = _png(label)
    root = HERE / "cityscapes" / "dummy_data"
    _write(root / "folders", files)
    images = {k: v for k, v in files.items() if k.startswith("leftImg8bit/")}
    labels = {k: v for k, v in files.items() if k.startswith("gtFine/")}
    _zip(root / "zips" / "leftImg8bit_trainvaltest.zip", {**images, "license.txt": b"dummy"})
    _zip(root / "zips" / "gtFine_trainvaltest.zip", {**labels, "license.txt": b"dummy"})


def mapillary(rng):
    def layout(label_folder, keys):
        files = {}
        for split, key in keys:
            files[f"{split}/images/{key}.jpg"] = _jpg(_image(rng))
            files[f"{split}/{label_folder}/{key}.png"] = _png(label_map("mapillary"), palette=True)
        return files

    root = HERE / "mapillary" / "dummy_data"
    keys = (("training", "a1Xq"), ("training", "b2Yr"), ("validation", "c3Zs"))
    # v1.1: extracted folders `<split>/labels/`.
    _write(root / "v1.1", layout("labels", keys))
    # v2.0: the zip, labels under `<split>/v1.2/labels/` beside the 124-class `v2.0/labels/`.
    files = layout("v1.2/labels", keys)
    for split, key in keys:
        files[f"{split}/v2.0/labels/{key}.png"] = _png(label_map("mapillary") + 100, palette=True)
    _zip(root / "v2.0" / "mapillary-vistas-dataset_public_v2.0.zip", files)


def apolloscape(rng):
    files = {}
    names = {
        "Record001/Camera 5": "170908_061502408_Camera_5",
        "Record001/Camera 6": "170908_061502408_Camera_6",
        "Record002/Camera 5": "170908_061600123_Camera_5",
    }
    for sub, name in names.items():
        files[f"road01_ins/ColorImage/{sub}/{name}.jpg"] = _jpg(_image(rng))
        files[f"road01_ins/Label/{sub}/{name}_bin.png"] = _png(label_map("apolloscape"))
    files["road01_ins_train.lst"] = "".join(
        f"road01_ins/ColorImage/{sub}/{name}.jpg\troad01_ins/Label/{sub}/{name}_bin.png\n"
        for sub, name in list(names.items())[:2]
    ).encode()
    sub, name = list(names.items())[2]
    files["road01_ins_val.lst"] = f"road01_ins/ColorImage/{sub}/{name}.jpg\n".encode()
    _write(HERE / "apolloscape" / "dummy_data", files)


def main():
    rng = np.random.default_rng(0)
    for write in (gta5, cityscapes, mapillary, apolloscape):
        write(rng)


if __name__ == "__main__":
    main()
