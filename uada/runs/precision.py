"""Training precision: Keras' global dtype policy chosen by name.

| name | variables | compute | loss scaling |
|---|---|---|---|
| `"none"` | float32 | float32 | no |
| `"mixed_bfloat16"` | float32 | bfloat16 | no (bfloat16 has float32's range) |
| `"mixed_float16"` | float32 | float16 | both optimizers (`UADAModel.compile` wraps them) |

Set the policy before the model is built: layers take the global policy when they are created.
Whatever the policy, uada's normalization statistics, the logits, D's logit and the losses are
float32 (see `uada.models.UADAModel`).
"""

import keras

from uada.names import PRECISIONS

_POLICIES = {
    "none": "float32",
    "mixed_bfloat16": "mixed_bfloat16",
    "mixed_float16": "mixed_float16",
}


def set_precision(name):
    """Sets Keras' global dtype policy for the training precision `name`.

    Args:
        name: one of `PRECISIONS`: `"none"` (float32), `"mixed_bfloat16"` or `"mixed_float16"`.

    Returns:
        The `keras.DTypePolicy` now in effect.
    """
    if name not in _POLICIES:
        raise ValueError(f"`precision` must be one of {PRECISIONS}. Received: precision={name!r}")
    keras.mixed_precision.set_dtype_policy(_POLICIES[name])
    return keras.mixed_precision.dtype_policy()
