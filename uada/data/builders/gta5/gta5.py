"""GTA5 ("Playing for Data", Richter et al. 2016) as a TFDS builder: uada's source domain."""

import io
import re

import scipy.io
import tensorflow as tf
from absl import logging

from uada.data.builders import common

# Paper: 9000 train / 3000 val frames when the owners' split.mat is absent.
NUM_TRAIN, NUM_VAL = 9000, 3000


def hashed_split(frames):
    """The split used without `split.mat`: deterministic, 3:1, at most 9000 train / 3000 val.

    `common.hashed_split` with the paper's bounds: the first `n_val = min(3000, (n + 2) // 4)`
    frames in the order of the MD5 of their image path are `val`, the next
    `min(9000, n - n_val)` are `train`. So 12000 or more frames give the paper's 9000 / 3000, and a
    small dataset is split 3:1 (4 frames: 3 / 1; 2 frames: 1 / 1).

    Args:
        frames: the paired `Frame`s.

    Returns:
        `{"train": [...], "val": [...]}`, each sorted by image path.
    """
    return common.hashed_split(frames, max_train=NUM_TRAIN, max_val=NUM_VAL)


class UadaGta5(common.SegmentationBuilder):
    """GTA5 frames with labels mapped to the 19 Cityscapes train ids (ids outside the table, such as
    34, become 255). Splits: `train`/`val`/`test` from the owners' `split.mat` when present, else a
    deterministic 3:1 split (9000 / 3000 for the full dataset, see `hashed_split`)."""

    LABEL_TABLE = "gta5"
    COMPONENTS = (
        common.Component("images", zips="*images.zip"),
        common.Component("labels", zips="*labels.zip"),
    )
    IMAGE_PATTERN = re.compile(r"(?:^|/)images/(?P<frame>\d+)\.png$")
    LABEL_PATTERN = re.compile(r"(?:^|/)labels/(?P<frame>\d+)\.png$")
    SPLIT_FILE = "split.mat"
    HOMEPAGE = "https://download.visinf.tu-darmstadt.de/data/from_games/"
    CITATION = """@inproceedings{Richter_2016_ECCV,
  title = {Playing for Data: Ground Truth from Computer Games},
  author = {Richter, Stephan R. and Vineet, Vibhav and Roth, Stefan and Koltun, Vladlen},
  booktitle = {ECCV}, year = {2016}}"""
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download GTA5 from https://download.visinf.tu-darmstadt.de/data/from_games/ (the ten
`NN_images.zip` and `NN_labels.zip` parts and, optionally, the owners' `split.mat`).
Put in the manual directory either the zips themselves or their extracted folders:
`images/00001.png ...` (RGB) and `labels/00001.png ...` (palette PNGs of Cityscapes label ids), and
`split.mat` (`trainIds`/`valIds`/`testIds`, 1-based frame numbers) if you have it.
"""

    def assign_splits(self, frames, files):
        """Splits by `split.mat` when the manual directory holds it, else by `hashed_split`."""
        split_file = f"{files.manual_dir}/{self.SPLIT_FILE}"
        if not tf.io.gfile.exists(split_file):
            return hashed_split(frames)
        with tf.io.gfile.GFile(split_file, "rb") as f:
            ids = scipy.io.loadmat(io.BytesIO(f.read()))
        by_number = {
            int(self.IMAGE_PATTERN.search(frame.image)["frame"]): frame for frame in frames
        }
        splits = {}
        for split, field in (("train", "trainIds"), ("val", "valIds"), ("test", "testIds")):
            numbers = [int(n) for n in ids.get(field, []).ravel()]
            missing = [n for n in numbers if n not in by_number]
            if missing:
                logging.warning(
                    "%s: %d frames of %s's %s are not in the manual directory (first: %05d).",
                    self.name, len(missing), self.SPLIT_FILE, field, missing[0],
                )  # fmt: skip
            splits[split] = sorted(
                (by_number[n] for n in numbers if n in by_number), key=lambda frame: frame.image
            )
        return splits
