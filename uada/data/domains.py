"""The domains of a run: which prepared dataset, split and resolution each domain name reads.

A domain name (`Config.source`, `.target`, `.unseen`) is one of `DATASETS` (this table's names;
`EVAL_ONLY_DATASETS` are those without a training split):

| name | builder | train split | eval split | read from |
|---|---|---|---|---|
| `gta5`, `cityscapes`, `mapillary` | same name | `train` | `val` | `<manual_dir>/<name>/` |
| `apolloscape` | `apolloscape` | - | `val` | `<manual_dir>/apolloscape/` |
| `demo_source` | `gta5` | `train` | `val` | `<data_dir>/uada_demo/<tag>/source/` |
| `demo_target` | `cityscapes` | `train` | `val` | `<data_dir>/uada_demo/<tag>/target/` |
| `demo_unseen` | `cityscapes` | - | `val` | `<data_dir>/uada_demo/<tag>/unseen/` |

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
and always read from `"full"`.
"""

import dataclasses
import os
import shutil
import time

import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from uada.data import builders, demo_generator
from uada.names import EVAL_ONLY_DATASETS

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


@dataclasses.dataclass(frozen=True)
class Domain:
    """Where a domain's data is: the builder, its manual and data directories, its splits."""

    name: str
    builder: str
    manual_dir: str
    data_dir: str | None
    is_demo: bool
    train_split: str | None
    eval_split: str = "val"

    def builder_config(self, resolution):
        """The builder config to read at `resolution` (`"384x768"` or `"full"`)."""
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


def get_domain(name, config):
    """Returns the `Domain` named `name` for the run `config`."""
    if name not in _DOMAINS:
        raise ValueError(f"Unknown domain. Expected one of {sorted(_DOMAINS)}. Received: {name!r}")
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
    if not any(name.startswith("demo_") for name in config.domains):
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


def load(domain, split, config, *, resolution="384x768", for_training=False):
    """Reads a split of a domain as a `tf.data.Dataset` of `{"image", "label", "file_name"}`.

    Prepares the dataset first if needed (a no-op once prepared).

    Args:
        domain: a `Domain`.
        split: a TFDS split (`"train"`, `"val"`, `"val[:10]"`).
        config: the run's `Config`.
        resolution: `"384x768"` or `"full"`.
        for_training: read for the training pipeline: files shuffled by the run's seed and no
            in-memory auto-cache (the pipeline's symbolic checkpoints do not support it).
            Otherwise the split is read in file order (its first N examples are its first N
            files).
    """
    read_config = None
    if for_training:
        # The builders store each split in file order; training reads its files shuffled and
        # interleaved (TFDS's default for unordered data) and lets the shuffle buffer mix.
        read_config = tfds.ReadConfig(
            try_autocache=False, shuffle_seed=config.seed, interleave_cycle_length=16,
            enable_ordering_guard=False,
        )  # fmt: skip
    builder_config = domain.builder_config(resolution)
    unprepared = not _builder(domain, builder_config).is_prepared()
    if unprepared and not domain.is_demo and not _has_files(domain.manual_dir):
        raise MissingDatasetError(_missing(domain, "no files there"))
    if unprepared:
        logging.info(
            "Preparing %s from %s ...", _describe(domain, builder_config), domain.manual_dir
        )
        start = time.monotonic()
    try:
        dataset = builders.load(
            domain.builder,
            split,
            data_dir=domain.data_dir,
            manual_dir=domain.manual_dir,
            config=builder_config,
            shuffle_files=for_training,
            read_config=read_config,
        )
    except FileNotFoundError as error:
        raise MissingDatasetError(_missing(domain, error)) from error
    if unprepared:
        splits = _builder(domain, builder_config).info.splits
        logging.info(
            "Prepared %s: %d images, %s (%.1f s)",
            _describe(domain, builder_config),
            sum(info.num_examples for info in splits.values()),
            " / ".join(f"{info.num_examples} {name}" for name, info in sorted(splits.items())),
            time.monotonic() - start,
        )
    return dataset


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
    """How the console names a domain being prepared, e.g. `demo_source (gta5 layout)`."""
    if domain.is_demo:
        return f"{domain.name} ({domain.builder} layout)"
    return f"{domain.name} ({builder_config})"


def num_examples(domain, split, config, *, resolution="384x768"):
    """Number of examples of a prepared split (prepares the dataset if needed)."""
    load(domain, split, config, resolution=resolution)
    return _builder(domain, domain.builder_config(resolution)).info.splits[split].num_examples
