"""Domain Agnostic Normalization (DAN): batch norm whose statistics come from the source."""

import keras

from uada.layers.source_first_normalization import SourceFirstNormalization


@keras.saving.register_keras_serializable(package="uada")
class DomainAgnosticNormalization(SourceFirstNormalization):
    """Domain Agnostic Normalization (DAN) layer.

    Batch normalization whose statistics are computed from the **source** samples only, and applied
    unchanged to the target samples. A training batch is laid out source first, `x = [x_s ; x_t]`,
    with `num_source` source samples. Statistics are per channel over all other axes, in float32.

    Training:
        mu_s, var_s = moments(x_s)
        y_s = gamma * (x_s - mu_s) / sqrt(var_s + eps) + beta
        y_t = gamma * (x_t - sg(mu_s)) / sqrt(sg(var_s) + eps_t) + beta    (sg = stop_gradient)
        moving_mean = momentum * moving_mean + (1 - momentum) * mu_s   (likewise the variance)

    with `eps_t = target_epsilon` (default: `eps`), so target samples never reach the moving
    statistics, and a loss of the target outputs has no gradient with respect to the source
    inputs (but does with respect to gamma and beta).
    Inference (every sample, every domain):
        y = gamma * (x - moving_mean) / sqrt(moving_variance + eps) + beta

    With no target part (`num_source` absent or equal to the batch size) DAN is numerically Keras
    `BatchNormalization` with the same `momentum` and `epsilon`.

    Args:
        axis: the channel axis. Defaults to -1.
        momentum: momentum of the moving averages. Defaults to 0.96 (the original code).
        epsilon: added to the variance. Defaults to 1e-5.
        target_epsilon: added to the source variance for the target samples in training;
            `None` (the default) for `epsilon`. The original code's target rows used 1e-9
            (docs/FIDELITY.md, *Normalization*). Inference uses `epsilon` for every sample.
        center: whether to add the learned offset `beta`.
        scale: whether to multiply by the learned scale `gamma`.
        synchronized: under `tf.distribute`, compute the source statistics over all replicas'
            source samples (all-reduce of count, sum and sum of squares) as synchronized BN does.
        **kwargs: the other arguments of `keras.layers.BatchNormalization` (initializers,
            regularizers, constraints) and base layer arguments (`name`, `dtype`).

    Call arguments:
        inputs: a tensor whose first axis is the batch, source samples first.
        training: whether to use batch statistics (and update the moving statistics).
        num_source: number of leading source samples. Defaults to the value set by
            `uada.layers.domain_split`, else every sample is source. Ignored at inference.

    Reference:
        Romijnders, Meletis, Dubbelman. *A Domain Agnostic Normalization Layer for Unsupervised
        Adversarial Domain Adaptation.* WACV 2019. arXiv:1809.05298.
    """

    target_statistics = "source"

    def __init__(self, axis=-1, momentum=0.96, epsilon=1e-5, *, target_epsilon=None, **kwargs):
        if target_epsilon is not None and (
            isinstance(target_epsilon, bool)
            or not isinstance(target_epsilon, int | float)
            or target_epsilon <= 0
        ):
            raise ValueError(
                "`target_epsilon` must be None or a positive number. "
                f"Received: target_epsilon={target_epsilon!r}"
            )
        super().__init__(axis=axis, momentum=momentum, epsilon=epsilon, **kwargs)
        self.target_epsilon = None if target_epsilon is None else float(target_epsilon)

    def get_config(self):
        return {**super().get_config(), "target_epsilon": self.target_epsilon}
