"""Split batch normalization: per-domain batch statistics, shared parameters and moving stats."""

import keras

from uada.layers.source_first_normalization import SourceFirstNormalization


@keras.saving.register_keras_serializable(package="uada")
class SplitBatchNormalization(SourceFirstNormalization):
    """Batch normalization with separate batch statistics for the source and the target part.

    A training batch is laid out source first, `x = [x_s ; x_t]`. Each part is normalized with its
    own batch statistics; `gamma`, `beta` and the moving statistics are shared (the configuration
    that produced the paper's 35.4% in Table 2):

        y_s = gamma * (x_s - mu_s) / sqrt(var_s + eps) + beta
        y_t = gamma * (x_t - mu_t) / sqrt(var_t + eps) + beta

    The moving statistics receive both domains' updates, source first, exactly as two sequential
    batch-norm updates with shared variables:

        moving = momentum * moving + (1 - momentum) * mu_s
        moving = momentum * moving + (1 - momentum) * mu_t

    Inference uses the shared moving statistics for every sample. With no target part the layer
    is Keras `BatchNormalization`; with `num_source=0` the whole batch is one (target) part.

    Args:
        axis: the channel axis. Defaults to -1.
        momentum: momentum of the moving averages. Defaults to 0.96.
        epsilon: added to the variance. Defaults to 1e-5.
        center: whether to add the learned offset `beta`.
        scale: whether to multiply by the learned scale `gamma`.
        synchronized: under `tf.distribute`, each part's statistics are all-reduced over the
            replicas (count, sum, sum of squares).
        **kwargs: other arguments of `keras.layers.BatchNormalization` and base layer arguments.

    Call arguments:
        inputs: a tensor whose first axis is the batch, source samples first.
        training: whether to use batch statistics (and update the moving statistics).
        num_source: number of leading source samples. Defaults to the value set by
            `uada.layers.domain_split`, else the whole batch is one part.

    Reference:
        Romijnders, Meletis, Dubbelman. *A Domain Agnostic Normalization Layer for Unsupervised
        Adversarial Domain Adaptation.* WACV 2019, Table 2 ("split batch").
    """

    target_statistics = "own"
