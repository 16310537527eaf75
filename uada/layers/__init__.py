"""The normalization family compared by the paper: none, batch, instance, split batch and DAN.

Nothing here imports models, data or training code.
"""

from uada.layers.domain_agnostic_normalization import DomainAgnosticNormalization
from uada.layers.domain_split import current_num_source, domain_split
from uada.layers.normalization import NORMALIZATIONS, get_normalization
from uada.layers.split_batch_normalization import SplitBatchNormalization

__all__ = [
    "NORMALIZATIONS",
    "DomainAgnosticNormalization",
    "SplitBatchNormalization",
    "current_num_source",
    "domain_split",
    "get_normalization",
]
