"""uada: Domain Agnostic Normalization (DAN) and unsupervised adversarial domain adaptation (UADA).

A Keras 3 / TensorFlow 2 reproduction of Romijnders, Meletis and Dubbelman, *A Domain Agnostic
Normalization Layer for Unsupervised Adversarial Domain Adaptation*, WACV 2019 (arXiv 1809.05298).

Sub-packages follow the direction of the data flow: `uada.layers` (normalization family) ->
`uada.models` (backbone, heads, the UADA model) -> `uada.data` (datasets and input pipeline).
"""

from uada.version import __version__

__all__ = ["__version__"]
