"""Cityscapes (gtFine) as a TFDS builder storing train ids: uada's target domain.

TFDS's own `cityscapes` builder yields raw label ids at full resolution; this one stores the 19
train ids, so it is registered under another name, `uada_cityscapes`.
"""

import re

from uada.data.builders import common


class UadaCityscapes(common.SegmentationBuilder):
    """Cityscapes fine annotations, label ids mapped to the 19 train ids. Splits: `train` (2975) and
    `val` (500); any city name is accepted."""

    LABEL_TABLE = "cityscapes"
    COMPONENTS = (
        common.Component("leftImg8bit", zips="leftImg8bit_trainvaltest.zip"),
        common.Component("gtFine", zips="gtFine_trainvaltest.zip"),
    )
    IMAGE_PATTERN = re.compile(
        r"(?:^|/)leftImg8bit/(?P<split>train|val)/(?P<city>[^/]+)/(?P<frame>[^/]+)_leftImg8bit\.png$"
    )
    LABEL_PATTERN = re.compile(
        r"(?:^|/)gtFine/(?P<split>train|val)/(?P<city>[^/]+)/(?P<frame>[^/]+)_gtFine_labelIds\.png$"
    )
    SPLIT_NAMES = {"train": "train", "val": "val"}
    HOMEPAGE = "https://www.cityscapes-dataset.com"
    CITATION = """@inproceedings{Cordts2016Cityscapes,
  title = {The Cityscapes Dataset for Semantic Urban Scene Understanding},
  author = {Cordts, Marius and Omran, Mohamed and Ramos, Sebastian and Rehfeld, Timo and
    Enzweiler, Markus and Benenson, Rodrigo and Franke, Uwe and Roth, Stefan and Schiele, Bernt},
  booktitle = {CVPR}, year = {2016}}"""
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download `leftImg8bit_trainvaltest.zip` and `gtFine_trainvaltest.zip` from
https://www.cityscapes-dataset.com/downloads/ (registration required). Put in the manual directory
either the two zips or their extracted folders
`leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png` and
`gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png`.
"""
