"""Mapillary Vistas (v1.x labels) as a TFDS builder: an unseen domain, the target of Table 6."""

import re

from uada.data.builders import common


class UadaMapillaryVistas(common.SegmentationBuilder):
    """Mapillary Vistas with its v1.x labels (66 classes) mapped to the 19 Cityscapes train ids.
    Splits: `train` (18000) and `val` (2000); images have their own sizes."""

    LABEL_TABLE = "mapillary"
    COMPONENTS = (
        # Either split alone is enough (e.g. `validation/` only, to test on an unseen domain).
        common.Component("training", zips="*.zip", required=False),
        common.Component("validation", zips="*.zip", required=False),
    )
    IMAGE_PATTERN = re.compile(r"(?:^|/)(?P<split>training|validation)/images/(?P<key>[^/]+)\.jpg$")
    # v1.1 zip: <split>/labels/; v2.0 zip: <split>/v1.2/labels/ (its v2.0/labels have 124 classes).
    LABEL_PATTERN = re.compile(
        r"(?:^|/)(?P<split>training|validation)/(?:v1\.2/)?labels/(?P<key>[^/]+)\.png$"
    )
    SPLIT_NAMES = {"training": "train", "validation": "val"}
    HOMEPAGE = "https://www.mapillary.com/dataset/vistas"
    CITATION = """@inproceedings{Neuhold_2017_ICCV,
  title = {The Mapillary Vistas Dataset for Semantic Understanding of Street Scenes},
  author = {Neuhold, Gerhard and Ollmann, Tobias and Rota Bulo, Samuel and Kontschieder, Peter},
  booktitle = {ICCV}, year = {2017}}"""
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download Mapillary Vistas (v1.1, or v2.0 whose zip also holds the v1.2 labels) from
https://www.mapillary.com/dataset/vistas (registration required). Put in the manual directory either
the zip itself or its extracted folders `training/` and `validation/`:
`<split>/images/<key>.jpg` with `<split>/labels/<key>.png` (v1.1) or `<split>/v1.2/labels/<key>.png`
(v2.0); labels are palette PNGs of the v1.x class indices 0..65.
"""
