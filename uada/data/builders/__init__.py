"""TFDS builders of the four real datasets, and `load()` to read one as a `tf.data.Dataset`.

| short name | TFDS name | splits |
|---|---|---|
| `"gta5"` | `uada_gta5` | train / val (/ test with `split.mat`) |
| `"cityscapes"` | `uada_cityscapes` | train / val |
| `"mapillary"` | `uada_mapillary_vistas` | train / val |
| `"apolloscape"` | `uada_apolloscape` | from list files, else `val` (every labelled frame) |
| `"folder"` | `uada_folder` | the card's `train` / `val`, else 3:1; `unlabelled` |

Every builder of a real dataset is a manual-download builder (its `MANUAL_DOWNLOAD_INSTRUCTIONS`
say what to put in the manual directory) with two configs: `"384x768"` (default, the paper's
training size) and `"full"` (native resolution). Labels are stored as train ids 0..18 and 255.
`"folder"` reads a folder dataset from its own folder, described by its card
(`uada.data.folder_card`); its config is made from the card and a size
(`folder.builder_config(card, size)`), and its labels are the card's class indices and 255.

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
from uada.data.builders.folder import folder
from uada.data.builders.folder.folder import UadaFolder
from uada.data.builders.gta5.gta5 import UadaGta5
from uada.data.builders.mapillary.mapillary import UadaMapillaryVistas
from uada.names import RESOLUTIONS

BUILDERS = {
    "gta5": UadaGta5,
    "cityscapes": UadaCityscapes,
    "mapillary": UadaMapillaryVistas,
    "apolloscape": UadaApolloscape,
    "folder": UadaFolder,
}


def builder(name, *, data_dir=None, config="384x768", skip_corrupt=False):
    """Returns the TFDS builder of dataset `name`.

    Args:
        name: one of `"gta5"`, `"cityscapes"`, `"mapillary"`, `"apolloscape"`, `"folder"`.
        data_dir: where TFDS stores prepared datasets; `None` for TFDS's default.
        config: `"384x768"` or `"full"`; for `"folder"` a `folder.FolderConfig`
            (`folder.builder_config(card, size)`).
        skip_corrupt: if True, preparation skips (and counts) corrupt files instead of raising.

    Returns:
        A `SegmentationBuilder` instance.
    """
    if name not in BUILDERS:
        raise ValueError(f"`name` must be one of {sorted(BUILDERS)}. Received: name={name!r}")
    if name == "folder":
        if not isinstance(config, folder.FolderConfig):
            raise ValueError(
                "`config` of the folder builder must be a `folder.FolderConfig` "
                f"(`folder.builder_config(card, size)`). Received: config={config!r}"
            )
    elif config not in RESOLUTIONS:
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
        name: one of `"gta5"`, `"cityscapes"`, `"mapillary"`, `"apolloscape"`, `"folder"`.
        split: a TFDS split, e.g. `"train"`, `"val"`, `"val[:10]"`.
        data_dir: where TFDS stores prepared datasets; `None` for TFDS's default.
        manual_dir: the folder holding the downloaded files (see the builder's
            `MANUAL_DOWNLOAD_INSTRUCTIONS`); `None` for `<data_dir>/downloads/manual`.
        config: as in `builder`.
        download_and_prepare: whether to prepare the dataset first (a no-op once prepared).
        shuffle_files: passed to `as_dataset`.
        read_config: a `tfds.ReadConfig` passed to `as_dataset`. Defaults to one without TFDS's
            in-memory auto-cache, so that iterators over the result can be checkpointed
            symbolically (a cached dataset cannot be).
        skip_corrupt: if True, preparation skips (and counts) corrupt files instead of raising.

    Returns:
        A `tf.data.Dataset` of dicts: `image` uint8 `(H, W, 3)`, `label` uint8 `(H, W)` train ids
        (0..18, 255; a folder dataset's class indices and 255), `file_name` string.
    """
    if download_and_prepare:
        dataset_builder = prepare(
            name, data_dir=data_dir, manual_dir=manual_dir, config=config,
            skip_corrupt=skip_corrupt,
        )  # fmt: skip
    else:
        dataset_builder = builder(name, data_dir=data_dir, config=config)
        _check_prepared_from(dataset_builder, manual_dir)
    if read_config is None:
        read_config = tfds.ReadConfig(try_autocache=False)
    dataset = dataset_builder.as_dataset(
        split=split, shuffle_files=shuffle_files, read_config=read_config
    )
    return dataset.map(_squeeze_label, num_parallel_calls=tf.data.AUTOTUNE)


def prepare(name, *, data_dir=None, manual_dir=None, config="384x768", skip_corrupt=False):
    """Prepares dataset `name` (a no-op once prepared); returns its builder.

    Args:
        name, data_dir, manual_dir, config, skip_corrupt: as in `load`.

    Returns:
        The prepared `SegmentationBuilder`; its `info.splits` lists the splits.
    """
    dataset_builder = builder(name, data_dir=data_dir, config=config, skip_corrupt=skip_corrupt)
    _check_prepared_from(dataset_builder, manual_dir)
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
    return dataset_builder


def _check_prepared_from(dataset_builder, manual_dir):
    """Two folders in one layout (e.g. the demo's target and unseen domains) must not share a
    data_dir: the second would silently read the first one's prepared data."""
    prepared_from = dataset_builder.prepared_from()
    if manual_dir is None or prepared_from is None:
        return
    if epath.Path(prepared_from).resolve() != epath.Path(manual_dir).expanduser().resolve():
        raise ValueError(
            f"{dataset_builder.name}/{dataset_builder.builder_config.name} in "
            f"{dataset_builder.data_dir_root} was prepared from {prepared_from}, not from the "
            f"given manual_dir. Use another `data_dir` for this folder. Received: "
            f"manual_dir={str(manual_dir)!r}"
        )


@tf.autograph.experimental.do_not_convert
def _squeeze_label(example):
    return {**example, "label": tf.squeeze(example["label"], axis=-1)}


__all__ = [
    "BUILDERS",
    "CorruptFileError",
    "SegmentationBuilder",
    "UadaApolloscape",
    "UadaCityscapes",
    "UadaGta5",
    "UadaFolder",
    "UadaMapillaryVistas",
    "builder",
    "folder",
    "load",
    "prepare",
]
