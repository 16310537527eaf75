"""`MinEntModel`: ADVENT's entropy minimization of the target predictions (`--mode=minent`).

    min over R, S of  L_seg(x_s, y_s) + L_reg + lambda_ent * E(x_t)

`E(x_t)` is the mean over the target pixels of the normalized entropy of S's softmax
(`uada.methods.entropy.entropy_loss`), computed on the logits at the input size, as ADVENT
computes it on its upsampled predictions.

Reference:
    Vu, Jain, Bucher, Cord, Pérez. *ADVENT: Adversarial Entropy Minimization for Domain
    Adaptation in Semantic Segmentation.* CVPR 2019, Sec. 3.1, Eq. 2-3 (MinEnt); lambda_ent =
    0.001 (Sec. 4.1; valeoai/ADVENT's `LAMBDA_ENT_MAIN`).
"""

import keras
import tensorflow as tf

from uada.methods.entropy import entropy_loss
from uada.methods.method_model import MethodModel


@keras.saving.register_keras_serializable(package="uada")
class MinEntModel(MethodModel):
    """R + S trained with L_seg + L_reg + lambda_ent * (the target predictions' mean entropy).

    The entropy of each target pixel is `-sum_c p_c log p_c / log C` with `p = softmax` of S's
    logits (in [0, 1]); its mean over the target pixels is the loss (ADVENT, Eq. 2-3). The
    gradient reaches R and S through the target logits only; nothing else is trained.

    Args:
        representation, segmentation_head: R and S.
        lambda_ent: weight of the entropy loss. Defaults to 0.001 (ADVENT).
        **kwargs: the other `uada.methods.method_model.MethodModel` arguments.

    Metrics: those of `MethodModel` and `entropy_loss`, the unweighted mean entropy of the
    target predictions.
    """

    hyperparameters = ("lambda_ent",)
    method_metric_names = ("entropy_loss",)
    bar_metric_names = ("entropy_loss",)

    def __init__(self, representation, segmentation_head, *, lambda_ent=0.001, **kwargs):
        if not lambda_ent >= 0:
            raise ValueError(f"`lambda_ent` must be >= 0. Received: lambda_ent={lambda_ent!r}")
        super().__init__(representation, segmentation_head, **kwargs)
        self.lambda_ent = float(lambda_ent)

    def _target_loss(self, logits, images, num_source):
        del images
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        entropy = entropy_loss(logits[num_source:])  # this replica's target pixels
        return self.lambda_ent * entropy / replicas, {"entropy_loss": entropy}
