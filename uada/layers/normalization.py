"""`get_normalization`: the normalization layer of every normalization position, chosen by name."""

import keras

from uada.layers.domain_agnostic_normalization import DomainAgnosticNormalization
from uada.layers.split_batch_normalization import SplitBatchNormalization
from uada.names import NORMALIZATIONS


def get_normalization(norm, *, momentum=0.96, epsilon=1e-5, center=True, scale=True,
                      synchronized=False, axis=-1, dan_target_epsilon=None,
                      **kwargs):  # fmt: skip
    """Returns a new normalization layer of the kind `norm` (the paper's Table 2).

    | norm | layer |
    |---|---|
    | `"none"` | `keras.layers.Identity` (the preceding conv should carry a bias) |
    | `"batch"` | `keras.layers.BatchNormalization`: statistics of the whole (mixed) batch |
    | `"instance"` | `keras.layers.GroupNormalization(groups=-1)`: per image and channel |
    | `"split_batch"` | `uada.layers.SplitBatchNormalization` |
    | `"dan"` | `uada.layers.DomainAgnosticNormalization` |

    Args:
        norm: one of `NORMALIZATIONS`.
        momentum: moving-average momentum of the batch-statistics layers (unused by "instance").
        epsilon: added to the variance (unused by "none").
        center: whether to learn an offset `beta` (unused by "none").
        scale: whether to learn a scale `gamma` (unused by "none").
        synchronized: all-reduce batch statistics across replicas under `tf.distribute`
            ("batch", "split_batch", "dan").
        axis: the channel axis.
        dan_target_epsilon: "dan" only: the epsilon of the target samples (DAN's
            `target_epsilon`); `None` for `epsilon`.
        **kwargs: base layer arguments, e.g. `name`, `dtype`.

    Returns:
        A `keras.layers.Layer`.
    """
    if norm not in NORMALIZATIONS:
        raise ValueError(f"`norm` must be one of {NORMALIZATIONS}. Received: norm={norm!r}")
    if norm == "none":
        return keras.layers.Identity(**kwargs)
    if norm == "instance":
        return keras.layers.GroupNormalization(
            groups=-1, axis=axis, epsilon=epsilon, center=center, scale=scale, **kwargs
        )
    if norm == "dan" and dan_target_epsilon is not None:
        kwargs["target_epsilon"] = dan_target_epsilon
    cls = {
        "batch": keras.layers.BatchNormalization,
        "split_batch": SplitBatchNormalization,
        "dan": DomainAgnosticNormalization,
    }[norm]
    return cls(axis=axis, momentum=momentum, epsilon=epsilon, center=center, scale=scale,
               synchronized=synchronized, **kwargs)  # fmt: skip
