"""`AdaptSegNetModel`: AdaptSegNet's single-level output-space adversarial training
(`--mode=adaptsegnet`).

    R, S step:  min  L_seg + L_reg + lambda_adv * BCE(D(P(x_t)), 0)
    D step:     min  (BCE(D(P(x_s)), 0) + BCE(D(P(x_t)), 1)) / 2

`P(x)` is S's softmax at the input size, D the fully convolutional output-space discriminator
(`uada.methods.output_space_discriminator`): the target's segmentation maps are made to look like
the source's, layout and context included.

Reference:
    Tsai, Hung, Schulter, Sohn, Yang, Chandraker. *Learning to Adapt Structured Output Space for
    Semantic Segmentation.* CVPR 2018, Sec. 3.2-3.3, Eq. 1-3 (single-level); lambda_adv = 0.001
    for the single level, D's Adam at 1e-4 (Sec. 4.1; wasidennis/AdaptSegNet's
    `LAMBDA_ADV_TARGET2`, `LEARNING_RATE_D`).
"""

import keras
import tensorflow as tf

from uada.methods.output_space_discriminator import OutputSpaceAdversarialModel


@keras.saving.register_keras_serializable(package="uada")
class AdaptSegNetModel(OutputSpaceAdversarialModel):
    """Output-space adversarial training on the softmax maps (AdaptSegNet, single level).

    D sees `p = softmax` of S's logits and is trained to tell source maps (0) from target maps
    (1); R and S are trained to make the target maps look like source to D
    (`OutputSpaceAdversarialModel` says how and what is logged).

    Args:
        representation, segmentation_head, discriminator: R, S and D.
        lambda_adv: weight of the adversarial loss. Defaults to 0.001 (AdaptSegNet's single
            level).
        discriminator_learning_rate: D's Adam learning rate. Defaults to 1e-4 (AdaptSegNet).
        **kwargs: the other `uada.methods.method_model.MethodModel` arguments.
    """

    def _discriminator_input(self, logits):
        return tf.nn.softmax(tf.cast(logits, tf.float32))
