"""The frozen configuration of a uada run, and its round trips to flag text and JSON.

`Config` holds everything that defines a training run: model, data, optimization, schedule and
bookkeeping. `python -m uada.train` fills it from flags (`uada.flags`) and writes it into the
workdir twice: `flags.txt` (a flagfile that reproduces the run: `--flagfile=DIR/flags.txt`) and
`config.json` (read back by `uada.evaluate`, `uada.predict` and `uada.export`). Library functions
take a `Config`, never flags.

Example:

```python
config = Config(source="demo_source", target="demo_target", unseen=("demo_unseen",),
                backbone="resnet_tiny", weights="none", image_size=(64, 128), train_steps=10)
text = config.to_flags_text()  # "--mode=uada\n--norm=dan\n..."
assert Config.from_json(config.to_json()) == config
```
"""

import dataclasses
import json

# The closed sets of names a field takes (`uada.names` says which module implements each).
from uada.names import (
    BACKBONES,
    DATASETS,
    EVAL_ONLY_DATASETS,
    MODES,
    NORMALIZATIONS,
    OUTPUT_STRIDES,
    PRECISIONS,
    RESOLUTIONS,
    SHIFT_NAMES,
    STRATEGIES,
)

__all__ = [
    "BACKBONES", "DATASETS", "EVAL_ONLY_DATASETS", "MODES", "NORMALIZATIONS", "OUTPUT_STRIDES",
    "PRECISIONS", "RESOLUTIONS", "SHIFT_NAMES", "STRATEGIES", "Config",
]  # fmt: skip


def _field(default, help, **flag):
    """A `Config` field with its description and its flag's options, in the field's metadata.

    Args:
        default: the field's default, also the flag's.
        help: the field's one description, also the flag's help text.
        **flag: the flag's options: `enum` (the closed set of names the field takes, defined by
            the module that owns it), `domain` (the field names domains: a name of `DATASETS`
            or the path of a folder dataset), `lower_bound`, `upper_bound`.
    """
    return dataclasses.field(default=default, metadata={"help": help, **flag})


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines a run. Field names equal the flag names of `uada.flags`.

    Each field is described once, by its metadata (`_field`): its description (`help`), and for
    a closed set of names (`enum`) or a bounded number (`lower_bound`, `upper_bound`) the values it
    takes. `uada.flags.define_train_flags` makes one flag of each field from it, so
    `python -m uada.train --helpfull` lists every field with its description, default and
    values; `Config.help(name)` returns one field's description. The names a closed set holds
    are documented by its owner: modes by `uada.models.UADAModel` and `uada.methods`,
    normalizations by `uada.layers.get_normalization`, backbones by `uada.models.build_backbone`,
    datasets and the `data_dir` / `manual_dir` layout by `uada.data.domains`, strategies by
    `uada.runs.distribute`, precisions by `uada.runs.precision`, demo shift factors by
    `uada.data.demo_generator`.

    The fields come in five groups: the model; the data (`batch_size` images per domain per step:
    2 source + 2 target in the paper; the demo source gets train + val frames, split 3:1 by the
    GTA5 builder); the optimization (the paper's experimental setup; docs/FIDELITY.md,
    *Training*); speed and scale (each replica takes `batch_size` source + `batch_size` target
    images, source first, and the normalization statistics are synchronized over the replicas;
    BENCHMARKS.md); and bookkeeping.
    """

    # Model.
    mode: str = _field("uada", "Training mode.", enum=MODES)
    norm: str = _field("dan", "Normalization in R.", enum=NORMALIZATIONS)
    backbone: str = _field("resnet50", "Backbone.", enum=BACKBONES)
    weights: str = _field(
        "imagenet",
        "Backbone weights: 'imagenet', 'none' or a path to a Keras weights file of the backbone.",
    )
    output_stride: int = _field(8, "Output stride of the backbone.", enum=OUTPUT_STRIDES)
    image_size: tuple[int, ...] = _field((384, 768), "Image height,width.")
    lambda_conf: float = _field(0.01, "Weight of the confusion loss.", lower_bound=0)
    dan_target_epsilon: float = _field(
        0.0,
        "With --norm=dan: the epsilon R's DAN layers add to the source variance for the target "
        "images in training; 0 for the source images' 1e-5. The original code's: 1e-9.",
        lower_bound=0,
    )

    # The other adaptation methods' hyperparameters (`uada.methods`; docs/FIDELITY.md, *Other
    # methods*): each mode reads only its own.
    lambda_ent: float = _field(
        0.001, "minent: weight of the target entropy loss (ADVENT's lambda_ent).", lower_bound=0
    )
    lambda_adv: float = _field(
        0.001,
        "advent, adaptsegnet: weight of the adversarial loss of the target outputs (lambda_adv).",
        lower_bound=0,
    )
    discriminator_learning_rate: float = _field(
        1e-4,
        "advent, adaptsegnet: Adam learning rate of the output-space discriminator, decayed "
        "with --lr_decay_epochs.",
        lower_bound=0,
    )
    teacher_ema: float = _field(
        0.99,
        "self_training: the teacher's exponential-moving-average factor (DACS's alpha).",
        lower_bound=0,
        upper_bound=1,
    )
    pseudo_label_threshold: float = _field(
        0.968,
        "self_training: a target pixel's pseudo-label counts as confident when the teacher's "
        "probability reaches this; the loss is weighted by the confident fraction.",
        lower_bound=0,
        upper_bound=1,
    )

    # Data.
    source: str = _field(
        "gta5",
        f"Labelled training domain: one of {list(DATASETS)} or the path of a folder dataset (a "
        "folder with a dataset.json, whose classes the run predicts; uada.data.folder_card).",
        domain=True,
    )
    target: str = _field(
        "cityscapes",
        "Unlabelled training domain: a built-in name or a folder dataset, as --source.",
        domain=True,
    )
    unseen: tuple[str, ...] = _field(
        ("mapillary", "apolloscape"),
        f"Comma-separated test-only domains, each one of {list(DATASETS)} or a folder dataset.",
        domain=True,
    )
    data_dir: str = _field("", "TFDS data directory (and home of the demo domains).")
    manual_dir: str = _field(
        "",
        "Root of the downloaded datasets: one sub-folder per dataset (gta5/, cityscapes/, "
        "mapillary/, apolloscape/).",
    )
    batch_size: int = _field(2, "Images per domain per step.", lower_bound=1)
    augment: bool = _field(True, "Photometric augmentation.")
    shuffle_buffer: int = _field(
        200, "Shuffle buffer per domain (the original's: 100 x its 2 images per step).",
        lower_bound=1,
    )  # fmt: skip
    demo_train_images: int = _field(200, "Demo: target training images.", lower_bound=1)
    demo_val_images: int = _field(100, "Demo: validation images per domain.", lower_bound=1)
    demo_shift: tuple[str, ...] = _field(
        ("full",),
        "Demo: comma-separated shift factors between the demo source and the other demo "
        f"domains, groups or factors of {list(SHIFT_NAMES)} (uada.data.demo_generator).",
    )

    # Optimization.
    epochs: float = _field(17.0, "Training epochs, used when --train_steps=0.", lower_bound=0)
    train_steps: int = _field(0, "Total G steps; 0 for --epochs epochs.", lower_bound=0)
    learning_rate: float = _field(0.01, "SGD learning rate of D and G.", lower_bound=0)
    momentum: float = _field(0.9, "SGD momentum.", lower_bound=0, upper_bound=1)
    lr_decay_epochs: tuple[float, ...] = _field(
        (9.0, 16.0), "Epochs after which the learning rate is multiplied by --lr_decay_factor."
    )
    lr_decay_factor: float = _field(0.5, "Learning-rate decay factor.", lower_bound=0)
    ramp_epochs: float = _field(1.0, "Epochs before the confusion loss starts.", lower_bound=0)
    steps_per_epoch: int = _field(
        0, "G steps per epoch; 0 to derive it from the smallest training dataset.", lower_bound=0
    )
    gradient_clip: str = _field(
        "auto",
        "Element-wise gradient bound of both updates: 'auto' (the original's: 5 in uada, none "
        "in source_only and multi_domain), 'none', or a positive number.",
    )

    # Speed and scale.
    strategy: str = _field(
        "default",
        "tf.distribute strategy: one device, all local GPUs (mirrored), or TF_CONFIG's workers.",
        enum=STRATEGIES,
    )
    mixed_precision: str = _field(
        "none",
        "Compute precision (variables stay float32; float16 uses loss scaling).",
        enum=PRECISIONS,
    )
    jit_compile: bool = _field(False, "XLA-compile the training step.")

    # Bookkeeping.
    seed: int = _field(0, "Random seed.")
    deterministic: bool = _field(False, "TensorFlow op determinism.")
    checkpoint_every: int = _field(1000, "Checkpoint period in G steps.", lower_bound=1)
    keep_checkpoints: int = _field(
        3,
        "Checkpoints kept (the latest ones); 0 keeps every checkpoint, e.g. to evaluate each one "
        "with `python -m uada.evaluate --checkpoints=all`.",
        lower_bound=0,
    )
    log_every: int = _field(100, "TensorBoard scalar period in G steps.", lower_bound=1)
    image_summary_every: int = _field(
        1000, "TensorBoard prediction-image period in G steps; 0 for none.", lower_bound=0
    )
    eval_resolution: str = _field(
        "384x768",
        "Evaluation resolution: '384x768' (the model's input size, labels resized nearest; the "
        "paper) or 'full' (logits upsampled to each label's size).",
        enum=RESOLUTIONS,
    )
    eval_batch_size: int = _field(4, "Evaluation batch size.", lower_bound=1)
    eval_max_images: int = _field(
        0, "Images per evaluated domain: its split's first N files (sorted); 0 for all.",
        lower_bound=0,
    )  # fmt: skip

    def __post_init__(self):
        # Lists from flags or JSON become tuples, so configs compare and hash by value.
        for name in ("image_size", "unseen", "lr_decay_epochs", "demo_shift"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def domains(self):
        """The run's domains in evaluation order: source, target, unseen (without repeats)."""
        return tuple(dict.fromkeys((self.source, self.target, *self.unseen)))

    @classmethod
    def help(cls, name):
        """The description of field `name` (its flag's help text)."""
        return cls.__dataclass_fields__[name].metadata["help"]

    def replace(self, **changes):
        """Returns a copy with `changes` applied."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """Returns the fields as a dict of JSON-compatible values."""
        return {
            field.name: list(value) if isinstance(value, tuple) else value
            for field in dataclasses.fields(self)
            for value in [getattr(self, field.name)]
        }

    def to_json(self):
        """Returns the config as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """Parses `to_json`'s output; unknown keys are an error naming them."""
        values = json.loads(text)
        unknown = sorted(set(values) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"Unknown config keys {unknown}. Received: {sorted(values)}")
        return cls(**values)

    def to_flags_text(self):
        """Returns a flagfile (one `--name=value` per line) that reproduces this config."""
        lines = []
        for name, value in self.to_dict().items():
            if isinstance(value, bool):
                lines.append(f"--{name}" if value else f"--no{name}")
            elif isinstance(value, list):
                lines.append(f"--{name}={','.join(str(v) for v in value)}")
            else:
                lines.append(f"--{name}={value}")
        return "\n".join(lines) + "\n"
