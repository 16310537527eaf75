"""Schedules of UADA training: learning rate (and the SGD that follows it), instance-noise sigma
and the confusion-loss ramp.

Steps are counted as in docs/FIDELITY.md, *Training*: an epoch is `steps_per_epoch` G steps
(1487 = 2975 Cityscapes train images / 2 per step); the instance-noise step counts D steps and
G steps together, as the original's global step did.
"""

import keras
import tensorflow as tf

STEPS_PER_EPOCH = 1487


def learning_rate_schedule(initial_learning_rate=0.01, *, steps_per_epoch=STEPS_PER_EPOCH,
                           decay_epochs=(9, 16), factor=0.5):  # fmt: skip
    """The learning rate in optimizer steps: `initial`, times `factor` after each decay epoch.

    With the defaults (the paper's text): 0.01 for epochs 1-9, 0.005 for epochs 10-16, 0.0025
    after. The original code decayed after 8/17 and 15/17 of training: `decay_epochs=(8, 15)`.

    Args:
        initial_learning_rate: the starting rate. Defaults to 0.01.
        steps_per_epoch: optimizer steps per epoch. Defaults to 1487.
        decay_epochs: increasing epoch counts (may be fractional) after which the rate is
            multiplied by `factor`. Defaults to (9, 16).
        factor: the decay factor. Defaults to 0.5.

    Returns:
        A `keras.optimizers.schedules.PiecewiseConstantDecay` evaluated at the optimizer's
        `iterations` (0-based): step `round(e * steps_per_epoch)` is the first at the new rate.
    """
    decay_epochs = tuple(decay_epochs)
    if any(b <= a for a, b in zip(decay_epochs, decay_epochs[1:], strict=False)) or any(
        e < 0 for e in decay_epochs
    ):
        raise ValueError(
            f"`decay_epochs` must be non-negative and increasing. Received: "
            f"decay_epochs={decay_epochs!r}"
        )
    if steps_per_epoch <= 0:
        raise ValueError(f"`steps_per_epoch` must be positive. Received: {steps_per_epoch!r}")
    if not decay_epochs:
        return keras.optimizers.schedules.PiecewiseConstantDecay([0], [initial_learning_rate] * 2)
    # PiecewiseConstantDecay keeps values[i] while step <= boundaries[i]: the boundary is the last
    # step at the old rate.
    boundaries = [int(round(e * steps_per_epoch)) - 1 for e in decay_epochs]
    values = [initial_learning_rate * factor**i for i in range(len(decay_epochs) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def sgd(learning_rate=0.01, *, steps_per_epoch=STEPS_PER_EPOCH, decay_epochs=(9, 16), factor=0.5,
        momentum=0.9, name=None):  # fmt: skip
    """The paper's optimizer: SGD with momentum on `learning_rate_schedule` (its arguments).

    Args:
        learning_rate, steps_per_epoch, decay_epochs, factor: as `learning_rate_schedule`'s.
        momentum: SGD momentum. Defaults to 0.9.
        name: the optimizer's name.

    Returns:
        A `keras.optimizers.SGD`.
    """
    schedule = learning_rate_schedule(
        learning_rate, steps_per_epoch=steps_per_epoch, decay_epochs=decay_epochs, factor=factor
    )
    return keras.optimizers.SGD(schedule, momentum=momentum, name=name)


def instance_noise_sigma(step, *, initial_sigma=0.1, decay_steps=20000):
    """Standard deviation of the instance noise added to Z before D.

        sigma = initial_sigma * (1 - min(step / decay_steps, 1))

    Args:
        step: D steps + G steps taken so far (a scalar tensor or number).
        initial_sigma: sigma at step 0. Defaults to 0.1.
        decay_steps: steps until sigma reaches 0. Defaults to 20000.

    Returns:
        A float32 scalar.
    """
    step = tf.cast(step, tf.float32)
    return initial_sigma * (1.0 - tf.minimum(step / float(decay_steps), 1.0))


def confusion_ramp(generator_step, *, ramp_steps=STEPS_PER_EPOCH):
    """Weight of the confusion loss: 0 for the first `ramp_steps` G steps, then 1 (the original's
    `--ramp_start -1`: no adaptation during the first epoch).

    Args:
        generator_step: G steps taken so far (a scalar tensor or number).
        ramp_steps: G steps with weight 0. Defaults to one epoch, 1487.

    Returns:
        A float32 scalar, 0 or 1.
    """
    return tf.cast(tf.cast(generator_step, tf.int64) >= ramp_steps, tf.float32)
