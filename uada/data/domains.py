"""The domains of a run: which prepared dataset, split and resolution each domain name reads.

A domain name (`Config.source`, `.target`, `.unseen`) is one of `DATASETS` (this table's names;
`EVAL_ONLY_DATASETS` are those without a training split), or the path of a folder dataset: a
folder holding its card `dataset.json` (`uada.data.folder_card`; a relative path is read from
the directory the command runs in, and a folder named like a built-in domain is written `./name`):

| name | builder | train split | eval split | read from |
|---|---|---|---|---|
| `gta5`, `cityscapes`, `mapillary` | same name | `train` | `val` | `<manual_dir>/<name>/` |
| `apolloscape` | `apolloscape` | - | `val` | `<manual_dir>/apolloscape/` |
| `demo_source` | `gta5` | `train` | `val` | `<data_dir>/uada_demo/<tag>/source/` |
| `demo_target` | `cityscapes` | `train` | `val` | `<data_dir>/uada_demo/<tag>/target/` |
| `demo_unseen` | `cityscapes` | - | `val` | `<data_dir>/uada_demo/<tag>/unseen/` |
| a folder path | `folder` | `train` (a target also `unlabelled`) | `val` | the folder |

`<manual_dir>` defaults to TFDS's `<data_dir>/downloads/manual` and `<data_dir>` to TFDS's default
data directory. The demo domains (`uada.data.demo_generator`) are generated on first use,
deterministically from the run's seed and image size (`<tag>` names both), and prepared by the
same TFDS builders as the real datasets, each demo domain into its own TFDS data directory beside
its files. A run's `demo_shift` (the shift factors between the demo domains,
`uada.data.demo_generator`) other than `full` adds `_shift-<name>` to `<tag>`.

`load` prepares a dataset on first use and says so (two info records: what it prepares, then
its images per split and the time taken); a real dataset that is neither prepared nor downloaded
is a `MissingDatasetError` whose message is the builder's download instructions.

Real datasets are read from the `"384x768"` builder config at the training resolution and from
`"full"` for full-resolution evaluation; the demo domains are generated at the run's image size
and always read from `"full"`; a folder dataset is prepared at the run's image size
(`uada.data.builders.folder`) and, for full-resolution evaluation, at its files' own sizes.

**Classes.** A run predicts `run_classes(config)`: the source card's classes for a folder source,
else the 19 Cityscapes classes (`uada.data.labels.CITYSCAPES`). Every other domain of the run must
have the same classes, in the same order: `get_domain` refuses one whose classes differ
(`DatasetCardError` naming both lists; a dataset with other raw labels is mapped to the run's
classes by its card's `label_map`). A source trains on its `train` split, a target on
`training_split(domain, config, labelled=False)`: also its images without labels.
"""

import dataclasses
import os
import shutil
import time

import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from uada.data import builders, demo_generator, folder_card
from uada.data import labels as labels_lib
from uada.data.builders.folder import folder as folder_builder
from uada.data.folder_card import DatasetCardError
from uada.names import DATASET_CARD, EVAL_ONLY_DATASETS

# Domain name (one of `DATASETS`) -> (builder name, demo folder or None). The domains of
# `EVAL_ONLY_DATASETS` have no training split.
_DOMAINS = {
    "gta5": ("gta5", None),
    "cityscapes": ("cityscapes", None),
    "mapillary": ("mapillary", None),
    "apolloscape": ("apolloscape", None),
    "demo_source": ("gta5", "source"),
    "demo_target": ("cityscapes", "target"),
    "demo_unseen": ("cityscapes", "unseen"),
}


class MissingDatasetError(FileNotFoundError):
    """A domain's dataset is neither prepared nor downloaded: the message says what to download
    and where to put it (the builder's `MANUAL_DOWNLOAD_INSTRUCTIONS`)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Domain:
    """Where a domain's data is: the builder, its manual and data directories, its splits; for a
    folder dataset its `card` and the run's `image_size` it is stored at."""

    name: str
    builder: str
    manual_dir: str
    data_dir: str | None
    is_demo: bool
    train_split: str | None
    eval_split: str | None = "val"
    card: folder_card.FolderCard | None = None
    image_size: tuple[int, int] | None = None

    def builder_config(self, resolution):
        """The builder config to read at `resolution` (`"384x768"`: the model's input size for
        a folder dataset; or `"full"`)."""
        if self.card is not None:
            size = None if resolution == "full" else self.image_size
            return folder_builder.builder_config(self.card, size)
        return "full" if self.is_demo else resolution


def data_dir(config):
    """The run's TFDS data directory: `config.data_dir` or TFDS's default."""
    return os.path.expanduser(config.data_dir) if config.data_dir else tfds.core.constants.DATA_DIR


def demo_root(config):
    """The folder of the run's demo domains, named by what determines their content."""
    height, width = config.image_size
    tag = (
        f"seed{config.seed}_{height}x{width}_{config.demo_train_images}train_"
        f"{config.demo_val_images}val"
    )
    shift = demo_generator.shift_name(config.demo_shift)
    if shift != "full":  # the default shift adds nothing to the tag
        tag += f"_shift-{shift}"
    return os.path.join(data_dir(config), "uada_demo", tag)


def run_classes(config):
    """The `uada.data.labels.Classes` the run `config` predicts: its source's (see the module
    docstring)."""
    return _classes(config.source)


def _classes(name):
    if name in _DOMAINS:
        return labels_lib.CITYSCAPES
    return _card(name).classes


def _card(name):
    """The card of the folder dataset `name`; an unknown name says what a domain may be."""
    if not folder_card.has_card(name):
        raise DatasetCardError(
            f"Unknown domain: neither one of {sorted(_DOMAINS)} nor a folder holding a "
            f"{DATASET_CARD} (README, 'Your own data'). Received: domain={name!r}"
        )
    return folder_card.read_card(name)


def get_domain(name, config):
    """Returns the `Domain` named `name` for the run `config`.

    Raises:
        DatasetCardError: `name` is neither a built-in domain nor a folder dataset, its card is
            wrong, or its classes differ from the run's (`run_classes`).
    """
    card = None if name in _DOMAINS else _card(name)
    classes = labels_lib.CITYSCAPES if card is None else card.classes
    expected = run_classes(config)
    if classes.names != expected.names:
        source = "" if card is None else f" of {card.path}"
        raise DatasetCardError(
            f"The domain {name} has other classes than the run: {list(classes.names)}{source}, "
            f"where the run's source {config.source} has {list(expected.names)}. Every domain of "
            "a run has the source's classes, in its order; map a dataset's own labels to them "
            f"with `label_map` in its {DATASET_CARD}."
        )
    if card is not None:
        splits = card.splits or folder_card.SPLITS
        return Domain(
            name=name,
            builder="folder",
            manual_dir=card.folder,
            data_dir=data_dir(config),
            is_demo=False,
            train_split="train" if "train" in splits else None,
            eval_split="val" if "val" in splits else None,
            card=card,
            image_size=tuple(config.image_size),
        )
    builder, demo_folder = _DOMAINS[name]
    trainable = name not in EVAL_ONLY_DATASETS
    if demo_folder is not None:
        root = demo_root(config)
        manual_dir = os.path.join(root, demo_folder)
        # Two demo domains share the Cityscapes builder: each gets its own TFDS data directory.
        domain_data_dir = os.path.join(root, "tfds", demo_folder)
    else:
        manual_root = (
            os.path.expanduser(config.manual_dir)
            if config.manual_dir
            else os.path.join(data_dir(config), "downloads", "manual")
        )
        manual_dir = os.path.join(manual_root, name)
        domain_data_dir = data_dir(config)
    return Domain(
        name=name,
        builder=builder,
        manual_dir=manual_dir,
        data_dir=domain_data_dir,
        is_demo=demo_folder is not None,
        train_split="train" if trainable else None,
    )


def ensure_demo(config):
    """Generates the run's demo domains if they are not there yet (a no-op for real datasets).

    The domains are written into a temporary folder that is renamed when complete, so an
    interrupted generation is redone, never half-used.
    """
    if not any(name in _DOMAINS and _DOMAINS[name][1] for name in config.domains):
        return
    root = demo_root(config)
    if os.path.isdir(root):
        return
    partial = root + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    height, width = config.image_size
    logging.info(
        "Generating the demo domains (seed %d, %dx%d) into %s ...", config.seed, height, width, root
    )
    demo_generator.generate(
        partial,
        seed=config.seed,
        image_size=tuple(config.image_size),
        num_source=config.demo_train_images + config.demo_val_images,
        num_target_train=config.demo_train_images,
        num_target_val=config.demo_val_images,
        num_unseen_train=1,
        num_unseen_val=config.demo_val_images,
        shift=config.demo_shift,
    )
    os.replace(partial, root)


def prepare(domain, config, *, resolution="384x768"):
    """Prepares a domain's dataset if needed (a no-op once prepared) and says so (see the module
    docstring); returns `{split: number of examples}`."""
    builder_config = domain.builder_config(resolution)
    dataset_builder = _builder(domain, builder_config)
    if dataset_builder.is_prepared():
        return _split_sizes(dataset_builder)
    if not domain.is_demo and domain.card is None and not _has_files(domain.manual_dir):
        raise MissingDatasetError(_missing(domain, "no files there"))
    logging.info("Preparing %s from %s ...", _describe(domain, builder_config), domain.manual_dir)
    start = time.monotonic()
    try:
        dataset_builder = builders.prepare(
            domain.builder, data_dir=domain.data_dir, manual_dir=domain.manual_dir,
            config=builder_config,
        )  # fmt: skip
    except FileNotFoundError as error:
        raise MissingDatasetError(_missing(domain, error)) from error
    sizes = _split_sizes(dataset_builder)
    logging.info(
        "Prepared %s: %d images, %s (%.1f s)",
        _describe(domain, builder_config),
        sum(sizes.values()),
        " / ".join(f"{n} {name}" for name, n in sorted(sizes.items())),
        time.monotonic() - start,
    )
    return sizes


def _split_sizes(dataset_builder):
    return {name: info.num_examples for name, info in dataset_builder.info.splits.items()}


def load(domain, split, config, *, resolution="384x768", for_training=False):
    """Reads a split of a domain as a `tf.data.Dataset` of `{"image", "label", "file_name"}`.

    Prepares the dataset first if needed (a no-op once prepared).

    Args:
        domain: a `Domain`.
        split: a TFDS split (`"train"`, `"val"`, `"val[:10]"`, `"train+unlabelled"`).
        config: the run's `Config`.
        resolution: `"384x768"` or `"full"`.
        for_training: read for the training pipeline: files shuffled by the run's seed and no
            in-memory auto-cache (the pipeline's symbolic checkpoints do not support it).
            Otherwise the split is read in file order (its first N examples are its first N
            files).

    Raises:
        MissingDatasetError: a real dataset is neither prepared nor downloaded.
        DatasetCardError: a folder dataset's card is wrong, or it has no images in `split`.
    """
    read_config = None
    if for_training:
        # The builders store each split in file order; training reads its files shuffled and
        # interleaved (TFDS's default for unordered data) and lets the shuffle buffer mix.
        read_config = tfds.ReadConfig(
            try_autocache=False, shuffle_seed=config.seed, interleave_cycle_length=16,
            enable_ordering_guard=False,
        )  # fmt: skip
    sizes = prepare(domain, config, resolution=resolution)
    if domain.card is not None:
        _check_split(domain, split, sizes)
    return builders.load(
        domain.builder,
        split,
        data_dir=domain.data_dir,
        manual_dir=domain.manual_dir,
        config=domain.builder_config(resolution),
        download_and_prepare=False,
        shuffle_files=for_training,
        read_config=read_config,
    )


def _check_split(domain, split, sizes):
    """A folder dataset's `split` (`"val"`, `"val[:4]"`, `"train+unlabelled"`) names splits with
    images, else a `DatasetCardError` says which and why."""
    for part in (split or "val").split("+"):
        name = part.split("[")[0]
        if not sizes.get(name):
            raise DatasetCardError(
                f"The folder dataset {domain.name} has no images in a split {name!r} (its "
                f"splits: {', '.join(f'{n} {s}' for s, n in sorted(sizes.items())) or 'none'}; "
                f"images without labels are left out of 'val'; {domain.card.path}, `splits`)."
            )


def training_split(domain, config, *, labelled=True):
    """The split a domain trains on: `train`, for a target (`labelled=False`) with the training
    images without labels of a folder dataset (`train+unlabelled`).

    Raises:
        DatasetCardError: a folder dataset without training images (no `train` in its card's
            `splits`, or none with labels for a source).
    """
    if domain.card is None:
        return domain.train_split
    if domain.train_split is None:
        raise DatasetCardError(
            f"{domain.card.path}: `splits` has no `train`, so {domain.name} cannot be a training "
            "domain (use it in --unseen, or add a train split file)."
        )
    sizes = prepare(domain, config)
    names = [domain.train_split] if labelled else [domain.train_split, folder_builder.UNLABELLED]
    names = [name for name in names if sizes.get(name)]
    if not names:
        raise DatasetCardError(
            f"The folder dataset {domain.name} has no training images"
            f"{' with labels' if labelled else ''} ({domain.card.path})."
        )
    return "+".join(names)


def _has_files(folder):
    path = epath.Path(folder)
    return path.is_dir() and any(path.iterdir())


def _missing(domain, reason):
    """The few lines that tell a user how to get the dataset a domain reads."""
    instructions = builders.BUILDERS[domain.builder].MANUAL_DOWNLOAD_INSTRUCTIONS.strip()
    return (
        f"Cannot prepare the domain {domain.name!r} from {domain.manual_dir}: "
        f"{str(reason).rstrip('.')}.\n"
        f"{instructions}\n"
        f"Then run the command again (it prepares the dataset once, into {domain.data_dir}); "
        f"--manual_dir=DIR reads DIR/{domain.name} instead."
    )


def _builder(domain, builder_config):
    return builders.builder(domain.builder, data_dir=domain.data_dir, config=builder_config)


def _describe(domain, builder_config):
    """How the console names a domain being prepared, e.g. `demo_source (gta5 layout)` or
    `data/cameras (folder dataset, 64x128)`."""
    if domain.is_demo:
        return f"{domain.name} ({domain.builder} layout)"
    if domain.card is not None:
        return f"{domain.name} (folder dataset, {builder_config.name.split('_')[0]})"
    return f"{domain.name} ({builder_config})"


def num_examples(domain, split, config, *, resolution="384x768"):
    """Number of examples of a prepared split, or of splits joined by `+` (prepares the dataset
    if needed)."""
    sizes = prepare(domain, config, resolution=resolution)
    if domain.card is not None:
        _check_split(domain, split, sizes)
    return sum(sizes[name] for name in split.split("+"))
