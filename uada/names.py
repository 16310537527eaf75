"""The closed sets of names a run's `uada.config.Config` takes, at the bottom of the package.

Every package may import them: `uada.config` makes each a field's `enum`, the modules below
implement them and document what each name means, and the command lines list them in `--help`.

| set | field | implemented and documented by |
|---|---|---|
| `MODES` | `mode` | `uada.models.UADAModel` (`UADA_MODES`), `uada.methods` (`METHOD_MODES`) |
| `NORMALIZATIONS` | `norm` | `uada.layers.get_normalization` |
| `BACKBONES`, `OUTPUT_STRIDES` | `backbone`, `output_stride` | `uada.models.build_backbone` |
| `DATASETS`, `EVAL_ONLY_DATASETS`, `DATASET_CARD` | `source`, `target`, `unseen` | `uada.data` |
| `SHIFT_NAMES` | `demo_shift` | `uada.data.demo_generator` (`FACTORS`, `SHIFT_GROUPS`) |
| `RESOLUTIONS` | `eval_resolution` | `uada.data.builders` (its builder configs) |
| `STRATEGIES` | `strategy` | `uada.runs.distribute.get_strategy` |
| `PRECISIONS` | `mixed_precision` | `uada.runs.precision.set_precision` |
"""

# The modes of the paper's model (`uada.models.UADAModel`), then the field's other adaptation
# methods (`uada.methods.METHODS`, one module each).
UADA_MODES = ("uada", "source_only", "multi_domain")
METHOD_MODES = ("minent", "advent", "adaptsegnet", "self_training")
MODES = UADA_MODES + METHOD_MODES
NORMALIZATIONS = ("none", "batch", "instance", "split_batch", "dan")
BACKBONES = ("resnet50", "resnet_tiny")
OUTPUT_STRIDES = (8, 16, 32)
# The names a domain flag takes (`--source`, `--target`, `--unseen`, `--domains`, ...).
DATASETS = (
    "gta5", "cityscapes", "mapillary", "apolloscape", "demo_source", "demo_target", "demo_unseen",
)  # fmt: skip
# Datasets without a training split, usable only as unseen (test) domains.
EVAL_ONLY_DATASETS = ("apolloscape", "demo_unseen")
# A domain flag also takes the path of a folder holding this file, its dataset card
# (`uada.data.folder_card`).
DATASET_CARD = "dataset.json"
# The demo's shift groups, then its shift factors: what `--demo_shift` takes (comma-separated).
SHIFT_NAMES = (
    "full", "appearance", "layout", "none",
    "color", "texture", "blur", "noise", "exposure", "haze", "camera", "objects",
)  # fmt: skip
# The stored resolutions of the dataset builders: evaluation reads that builder config.
RESOLUTIONS = ("384x768", "full")
STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = ("none", "mixed_bfloat16", "mixed_float16")
