"""The training-time domain split shared by every domain-aware normalization layer of a model.

A training batch is laid out source first: `x = [x_s ; x_t]`, the first `num_source` samples are
source. A layer called directly takes the split as a call argument
(`layer(x, training=True, num_source=2)`); inside a model, where Keras does not forward arbitrary
call arguments to nested layers, the training code sets it once for every layer with::

    with uada.layers.domain_split(2):
        logits = model(images, training=True)

The split is read when a layer's `call` runs, i.e. at trace time inside a `tf.function`; it is a
plain Python integer, so it becomes part of the traced graph. A module-level stack (not a
thread-local) is used on purpose: `tf.distribute.MirroredStrategy` runs each replica's function in
its own thread, and every replica must see the split set by the caller.
"""

import contextlib

import numpy as np

_SPLIT_STACK = []


def validate_num_source(num_source):
    """Checks a `num_source` value given by a user; returns it as an `int` (or `None`)."""
    if num_source is None:
        return None
    if isinstance(num_source, bool) or not isinstance(num_source, int | np.integer):
        raise ValueError(
            f"`num_source` must be a non-negative Python integer or None. "
            f"Received: num_source={num_source!r}"
        )
    if num_source < 0:
        raise ValueError(f"`num_source` must be >= 0. Received: num_source={num_source}")
    return int(num_source)


@contextlib.contextmanager
def domain_split(num_source):
    """Sets the number of leading source samples for every domain-aware layer called inside.

    Args:
        num_source: number of source samples at the start of every training batch (per replica
            under `tf.distribute`). `None` means "every sample is source" (DAN is then exactly BN).

    Yields:
        `num_source`, validated.
    """
    num_source = validate_num_source(num_source)
    _SPLIT_STACK.append(num_source)
    try:
        yield num_source
    finally:
        _SPLIT_STACK.pop()


def current_num_source():
    """Returns the innermost `domain_split` value, or `None` outside any `domain_split`."""
    return _SPLIT_STACK[-1] if _SPLIT_STACK else None
