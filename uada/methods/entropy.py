"""Entropy of the segmentation outputs, as ADVENT defines it (Vu et al., CVPR 2019, Sec. 3).

For the softmax `p = softmax(logits)` of a pixel over `C` classes:

| quantity | formula | used by |
|---|---|---|
| weighted self-information | `I_c = -p_c log p_c / log C`, `C` channels | `advent`'s D |
| normalized entropy | `E = sum_c I_c`, in [0, 1] | `minent`'s loss (its mean) |

ADVENT writes `log2` and adds 1e-30 inside the log; the ratio `log p / log C` is the same in any
base, and `log p` is computed here as `log_softmax(logits)`, finite where `p` underflows to 0
(where `p log p` is 0 either way).
"""

import math

import tensorflow as tf


def weighted_self_information(logits):
    """ADVENT's weighted self-information maps `-p log p / log C` per class.

    Args:
        logits: `[N, H, W, C]` class logits.

    Returns:
        float32 `[N, H, W, C]`, each value in [0, 1 / (e log C)].
    """
    logits = tf.cast(logits, tf.float32)
    num_classes = int(logits.shape[-1])
    return -tf.nn.softmax(logits) * tf.nn.log_softmax(logits) / math.log(num_classes)


def entropy_loss(logits):
    """ADVENT's MinEnt loss: the mean over pixels of the normalized entropy
    `-sum_c p_c log p_c / log C` (float32 scalar, in [0, 1])."""
    return tf.reduce_mean(tf.reduce_sum(weighted_self_information(logits), axis=-1))
