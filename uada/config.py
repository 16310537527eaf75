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

# The closed sets of names a field takes, each defined by the module that owns it.
from uada.data.builders import CONFIG_NAMES as RESOLUTIONS  # evaluation reads that builder config
from uada.distribute import STRATEGIES
from uada.domains import DATASETS, EVAL_ONLY_DATASETS
from uada.layers import NORMALIZATIONS
from uada.models import BACKBONES, MODES, OUTPUT_STRIDES
from uada.precision import PRECISIONS

__all__ = [
    "BACKBONES", "DATASETS", "EVAL_ONLY_DATASETS", "MODES", "NORMALIZATIONS", "OUTPUT_STRIDES",
    "PRECISIONS", "RESOLUTIONS", "STRATEGIES", "Config",
]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines a run. Field names equal the flag names of `uada.flags`.

    Model:
        mode: `"uada"` (adversarial adaptation), `"source_only"` (no target images, no D) or
            `"multi_domain"` (target images reach the normalization only; no D, no confusion).
        norm: normalization in R, one of `NORMALIZATIONS`.
        backbone: `"resnet50"` (the paper) or `"resnet_tiny"` (demos and tests).
        weights: `"imagenet"`, `"none"` (random initialization) or a path to Keras ResNet-50
            weights.
        output_stride: 8 (the paper), 16 or 32.
        image_size: `(height, width)` of training and inference images.
        lambda_conf: weight of the confusion loss.

    Data:
        source, target: training domains (names in `DATASETS`). The target is also evaluated in
            source-only mode.
        unseen: test-only domains.
        data_dir: where TFDS stores prepared datasets and where the demo domains are generated;
            empty for TFDS's default.
        manual_dir: root of the downloaded datasets, one sub-folder per dataset named as in
            `DATASETS` (`<manual_dir>/gta5`, `<manual_dir>/cityscapes`, ...); empty for TFDS's
            default `<data_dir>/downloads/manual`.
        batch_size: images per domain per step (2 source + 2 target in the paper).
        augment: photometric augmentation of both domains.
        shuffle_buffer: examples per domain in the shuffle buffer.
        demo_train_images, demo_val_images: size of the generated demo domains (target train and
            val; the source gets train + val frames, split 3:1 by the GTA5 builder).

    Optimization (the paper's experimental setup; docs/FIDELITY.md, *Training*):
        epochs: training length in epochs of the smallest training dataset, used when
            `train_steps` is 0.
        train_steps: total G steps; 0 for `epochs` epochs.
        learning_rate, momentum: SGD of both D and G.
        lr_decay_epochs, lr_decay_factor: the rate is multiplied by the factor after each epoch.
        ramp_epochs: epochs of G steps before the confusion loss is switched on.
        steps_per_epoch: G steps per epoch; 0 to compute it from the smallest training dataset.
        gradient_clip: element-wise gradient bound: `"auto"` (the original's: 5 in `uada`, none
            in `source_only` and `multi_domain`), `"none"`, or a positive number as text.

    Speed and scale (`uada.distribute`, `uada.precision`; BENCHMARKS.md):
        strategy: `"default"` (one device), `"mirrored"` (all local GPUs, else the local CPU
            devices) or `"multi_worker"` (`MultiWorkerMirroredStrategy` from `TF_CONFIG`). Each
            replica takes `batch_size` source + `batch_size` target images, source first; the
            normalization statistics are synchronized over the replicas.
        mixed_precision: `"none"`, `"mixed_bfloat16"` or `"mixed_float16"` (loss scaling of
            both optimizers).
        jit_compile: XLA-compile the training step.

    Bookkeeping:
        seed: seeds initialization, data order and augmentation.
        deterministic: TensorFlow op determinism (exact reruns and resumption; slower).
        checkpoint_every, keep_checkpoints: checkpoint period in G steps and how many to keep
            (the latest ones; 0 keeps every checkpoint).
        log_every: TensorBoard scalar period in G steps.
        image_summary_every: period of TensorBoard prediction images; 0 for none.
        eval_resolution: `"384x768"` (the model's input size, labels resized nearest; the paper)
            or `"full"` (logits upsampled bilinearly to each label's size).
        eval_batch_size: images per evaluation batch (at `"384x768"`).
        eval_max_images: evaluate at most this many images per domain; 0 for all.
    """

    mode: str = "uada"
    norm: str = "dan"
    backbone: str = "resnet50"
    weights: str = "imagenet"
    output_stride: int = 8
    image_size: tuple = (384, 768)
    lambda_conf: float = 0.01

    source: str = "gta5"
    target: str = "cityscapes"
    unseen: tuple = ("mapillary", "apolloscape")
    data_dir: str = ""
    manual_dir: str = ""
    batch_size: int = 2
    augment: bool = True
    shuffle_buffer: int = 256
    demo_train_images: int = 200
    demo_val_images: int = 100

    epochs: float = 17.0
    train_steps: int = 0
    learning_rate: float = 0.01
    momentum: float = 0.9
    lr_decay_epochs: tuple = (9.0, 16.0)
    lr_decay_factor: float = 0.5
    ramp_epochs: float = 1.0
    steps_per_epoch: int = 0
    gradient_clip: str = "auto"

    strategy: str = "default"
    mixed_precision: str = "none"
    jit_compile: bool = False

    seed: int = 0
    deterministic: bool = False
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 100
    image_summary_every: int = 1000
    eval_resolution: str = "384x768"
    eval_batch_size: int = 4
    eval_max_images: int = 0

    def __post_init__(self):
        # Lists from flags or JSON become tuples, so configs compare and hash by value.
        for name in ("image_size", "unseen", "lr_decay_epochs"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def domains(self):
        """The run's domains in evaluation order: source, target, unseen (without repeats)."""
        return tuple(dict.fromkeys((self.source, self.target, *self.unseen)))

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
