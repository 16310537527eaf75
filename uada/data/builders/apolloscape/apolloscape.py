"""ApolloScape scene parsing as a TFDS builder: an unseen domain."""

import collections
import posixpath
import re

from absl import logging

from uada.data.builders import common

_LIST_NAME = re.compile(r"(?:^|_)(?P<split>train|val|test)\.lst$")


class UadaApolloscape(common.SegmentationBuilder):
    """ApolloScape scene parsing, label ids mapped to the 19 Cityscapes train ids (nothing maps to
    terrain or train). Splits: those of the list files in the manual directory, else one split
    `val` of every labelled frame (ApolloScape is only evaluated on, as an unseen domain)."""

    LABEL_TABLE = "apolloscape"
    # Road folders (road01_ins, road02_seg, ...) vary; the whole manual directory is searched.
    COMPONENTS = (common.Component("."),)
    IMAGE_PATTERN = re.compile(r"^(?P<road>.*?)ColorImage/(?P<sub>(?:.*/)?)(?P<name>[^/]+)\.jpg$")
    LABEL_PATTERN = re.compile(r"^(?P<road>.*?)Label/(?P<sub>(?:.*/)?)(?P<name>[^/]+)_bin\.png$")
    HOMEPAGE = "https://apolloscape.auto/scene.html"
    CITATION = """@article{wang2019apolloscape,
  title = {The ApolloScape Open Dataset for Autonomous Driving and its Application},
  author = {Wang, Peng and Huang, Xinyu and Cheng, Xinjing and Zhou, Dingfu and Geng, Qichuan and
    Yang, Ruigang}, journal = {IEEE TPAMI}, year = {2019}}"""
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download the ApolloScape scene parsing archives (e.g. `road01_ins.tar.gz`, ...) from
https://apolloscape.auto/scene.html and extract them into the manual directory, keeping their
folders: `<road>/ColorImage/<record>/<camera>/<name>.jpg` and
`<road>/Label/<record>/<camera>/<name>_bin.png` (folder names such as `Camera 5` contain
spaces).
Optional split lists: text files named `train.lst`, `val.lst`, `test.lst` or `<anything>_train.lst`
etc. anywhere in the manual directory, one frame a line; the first tab-separated field of a line is
the frame's ColorImage path (only its file name is used). Without lists every labelled frame goes
to one split, `val` (ApolloScape is an unseen, evaluation-only domain).
"""

    def assign_splits(self, frames, files):
        """Splits by the list files (`*_<split>.lst`, first tab field the image path), else `val`.

        A frame is matched to a list line by its image's file name; frames that no list names are
        left out and counted in the log.
        """
        lists = [path for path in files.paths() if _LIST_NAME.search(posixpath.basename(path))]
        if not lists:
            # TFDS reserves the split name `all`.
            return {"val": frames}
        split_of = {}
        for path in lists:
            split = _LIST_NAME.search(posixpath.basename(path))["split"]
            for line in files.read(path).decode("utf-8").splitlines():
                if line.strip():
                    split_of[posixpath.basename(line.split("\t")[0].strip())] = split
        splits = collections.defaultdict(list)
        for frame in frames:
            split = split_of.get(posixpath.basename(frame.image))
            if split is not None:
                splits[split].append(frame)
        unlisted = len(frames) - sum(len(split_frames) for split_frames in splits.values())
        if unlisted:
            logging.warning("%s: %d labelled frames are in no split list.", self.name, unlisted)
        return dict(splits)
