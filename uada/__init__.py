"""uada: Domain Agnostic Normalization (DAN) and unsupervised adversarial domain adaptation (UADA).

A Keras 3 / TensorFlow 2 reproduction of Romijnders, Meletis and Dubbelman, *A Domain Agnostic
Normalization Layer for Unsupervised Adversarial Domain Adaptation*, WACV 2019 (arXiv 1809.05298).

Packages import in one direction, from the bottom up:

- `uada.names` (the closed sets of names a run takes), `uada.config` (the frozen `Config`) and
  `uada.config_flags` (a `Config` as command-line flags);
- `uada.layers` (the normalization family) and `uada.data` (labels, datasets, the demo domains,
  input pipelines);
- `uada.models` (backbone, heads, losses, schedules, the frame every adaptation method trains in,
  the UADA model and its training step) and `uada.metrics` (confusion matrices and IoU);
- `uada.methods` (the field's other adaptation methods, one module each, on the models' frame);
- `uada.runs` (a run directory and what is done with it: training, evaluation, inference, the
  runs of the paper's tables);
- `uada.analysis` (what is computed from trained runs: tables, curves, figures, selection; and
  the inspection of a folder dataset);
- the command lines `python -m uada.<command>` (`train`, `evaluate`, `predict`, `export`,
  `retrieval`, `predict_grid`, `selection`, `reproduce`, `demo`, `diagnostics`, `pretrain`,
  `inspect_dataset`), with
  their flags (`uada.flags`), console (`uada.console`) and one-line error reporting
  (`uada.command_errors`).
"""

from uada.version import __version__

__all__ = ["__version__"]
