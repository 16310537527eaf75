"""TFDS builders of the four real datasets, and `load()` to read one as a `tf.data.Dataset`.

| short name | TFDS name | splits |
|---|---|---|
| `"gta5"` | `uada_gta5` | train / val (/ test with `split.mat`) |
| `"cityscapes"` | `uada_cityscapes` | train / val |
| `"mapillary"` | `uada_mapillary_vistas` | train / val |
| `"apolloscape"` | `uada_apolloscape` | from list files, else `val` (every labelled frame) |

Every builder is a manual-download builder (its `MANUAL_DOWNLOAD_INSTRUCTIONS` say what to put in
the manual directory) with two configs: `"384x768"` (default, the paper's training size) and
`"full"` (native resolution). Labels are stored as train ids 0..18 and 255.

Example:

```python
ds = uada.data.builders.load("cityscapes", "val", manual_dir="~/data/cityscapes")
for example in ds.take(1):
    example["image"]  # uint8 (384, 768, 3)
    example["label"]  # uint8 (384, 768), train ids
```
"""

import contextlib
import io

import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from uada.data.builders.apolloscape.apolloscape import UadaApolloscape
from uada.data.builders.cityscapes.cityscapes import UadaCityscapes
from uada.data.builders.common import CorruptFileError, SegmentationBuilder
from uada.data.builders.gta5.gta5 import UadaGta5
from uada.data.builders.mapillary.mapillary import UadaMapillaryVistas
from uada.names import RESOLUTIONS

BUILDERS = {
    "gta5": UadaGta5,
    "cityscapes": UadaCityscapes,
    "mapillary": UadaMapillaryVistas,
    "apolloscape": UadaApolloscape,
}


def builder(name, *, data_dir=None, config="384x768", skip_corrupt=False):
    """Returns the TFDS builder of dataset `name`.

    Args:
        name: one of `"gta5"`, `"cityscapes"`, `"mapillary"`, `"apolloscape"`.
        data_dir: where TFDS stores prepared datasets; `None` for TFDS's default.
        config: `"384x768"` or `"full"`.
        skip_corrupt: if True, preparation skips (and counts) corrupt files instead of raising.

    Returns:
        A `SegmentationBuilder` instance.
    """
    if name not in BUILDERS:
        raise ValueError(f"`name` must be one of {sorted(BUILDERS)}. Received: name={name!r}")
    if config not in RESOLUTIONS:
        raise ValueError(
            f"`config` must be one of {list(RESOLUTIONS)}. Received: config={config!r}"
        )
    return BUILDERS[name](data_dir=data_dir, config=config, skip_corrupt=skip_corrupt)


def load(
    name,
    split,
    *,
    data_dir=None,
    manual_dir=None,
    config="384x768",
    download_and_prepare=True,
    shuffle_files=False,
    read_config=None,
    skip_corrupt=False,
):
    """Prepares (if asked and needed) and reads a split of dataset `name`.

    Args:
        name: one of `"gta5"`, `"cityscapes"`, `"mapillary"`, `"apolloscape"`.
        split: a TFDS split, e.g. `"train"`, `"val"`, `"val[:10]"`.
        data_dir: where TFDS stores prepared datasets; `None` for TFDS's default.
        manual_dir: the folder holding the downloaded files (see the builder's
            `MANUAL_DOWNLOAD_INSTRUCTIONS`); `None` for `<data_dir>/downloads/manual`.
        config: `"384x768"` or `"full"`.
        download_and_prepare: whether to prepare the dataset first (a no-op once prepared).
        shuffle_files: passed to `as_dataset`.
        read_config: a `tfds.ReadConfig` passed to `as_dataset`. Defaults to one without TFDS's
            in-memory auto-cache, so that iterators over the result can be checkpointed
            symbolically (a cached dataset cannot be).
        skip_corrupt: if True, preparation skips (and counts) corrupt files instead of raising.

    Returns:
        A `tf.data.Dataset` of dicts: `image` uint8 `(H, W, 3)`, `label` uint8 `(H, W)` train ids
        (0..18, 255), `file_name` string.
    """
    dataset_builder = builder(name, data_dir=data_dir, config=config, skip_corrupt=skip_corrupt)
    prepared_from = dataset_builder.prepared_from()
    if manual_dir is not None and prepared_from is not None:
        # Two folders in one layout (e.g. the demo's target and unseen domains) must not share a
        # data_dir: the second would silently read the first one's prepared data.
        if epath.Path(prepared_from).resolve() != epath.Path(manual_dir).expanduser().resolve():
            raise ValueError(
                f"{dataset_builder.name}/{config} in {dataset_builder.data_dir_root} was prepared "
                f"from {prepared_from}, not from the given manual_dir. Use another "
                f"`data_dir` for this folder. Received: manual_dir={str(manual_dir)!r}"
            )
    if download_and_prepare:
        # Statistics are skipped: they would cost a second pass over every image and uada uses none.
        download_config = tfds.download.DownloadConfig(
            manual_dir=manual_dir, compute_stats=tfds.download.ComputeStatsMode.SKIP
        )
        # TFDS prints its own notices ("Downloading and preparing dataset Unknown size ...") to
        # stdout: they become debug records, shown with --verbosity=1.
        with contextlib.redirect_stdout(io.StringIO()) as notices:
            dataset_builder.download_and_prepare(download_config=download_config)
        if notices.getvalue().strip():
            logging.debug("TFDS: %s", notices.getvalue().strip())
    if read_config is None:
        read_config = tfds.ReadConfig(try_autocache=False)
    dataset = dataset_builder.as_dataset(
        split=split, shuffle_files=shuffle_files, read_config=read_config
    )
    return dataset.map(_squeeze_label, num_parallel_calls=tf.data.AUTOTUNE)


def _squeeze_label(example):
    return {**example, "label": tf.squeeze(example["label"], axis=-1)}


__all__ = [
    "BUILDERS",
    "CorruptFileError",
    "SegmentationBuilder",
    "UadaApolloscape",
    "UadaCityscapes",
    "UadaGta5",
    "UadaMapillaryVistas",
    "builder",
    "load",
]
