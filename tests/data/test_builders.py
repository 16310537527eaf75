"""The four dataset builders pass TFDS's builder test on their committed `dummy_data/`.

`tfds.testing.DatasetBuilderTestCase` prepares each builder from its dummy data (as the manual
directory) for both configs, checks the example counts per split, the features' shapes and dtypes,
that splits do not overlap, and that the builder module uses neither `os` nor `open`.
"""

import tensorflow_datasets as tfds

from uada.data import builders


def _dummy(builder_class, *parts):
    return str(builder_class.code_path.parent.joinpath("dummy_data", *parts))


class Gta5Test(tfds.testing.DatasetBuilderTestCase):
    """split.mat: train 1, 2; val 3 (label smaller than its image); test 4, 5 (5 has no label)."""

    DATASET_CLASS = builders.UadaGta5
    SPLITS = {"train": 2, "val": 1, "test": 1}


class CityscapesFoldersTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = builders.UadaCityscapes
    EXAMPLE_DIR = _dummy(builders.UadaCityscapes, "folders")
    SPLITS = {"train": 2, "val": 1}


class CityscapesZipsTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = builders.UadaCityscapes
    EXAMPLE_DIR = _dummy(builders.UadaCityscapes, "zips")
    SPLITS = {"train": 2, "val": 1}


class MapillaryV11FoldersTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = builders.UadaMapillaryVistas
    EXAMPLE_DIR = _dummy(builders.UadaMapillaryVistas, "v1.1")
    SPLITS = {"train": 2, "val": 1}


class MapillaryV20ZipTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = builders.UadaMapillaryVistas
    EXAMPLE_DIR = _dummy(builders.UadaMapillaryVistas, "v2.0")
    SPLITS = {"train": 2, "val": 1}


class ApolloscapeTest(tfds.testing.DatasetBuilderTestCase):
    """Record/camera folders with spaces; split lists road01_ins_{train,val}.lst."""

    DATASET_CLASS = builders.UadaApolloscape
    SPLITS = {"train": 2, "val": 1}
