"""`AdvEntModel`: ADVENT's adversarial entropy minimization (`--mode=advent`).

    R, S step:  min  L_seg + L_reg + lambda_adv * BCE(D(I(x_t)), 0)
    D step:     min  (BCE(D(I(x_s)), 0) + BCE(D(I(x_t)), 1)) / 2

`I(x)` are the weighted self-information maps `-p log p / log C` of S's softmax at the input
size (`uada.methods.entropy.weighted_self_information`), D the fully convolutional output-space
discriminator (`uada.methods.output_space_discriminator`). Aligning the maps' distributions makes
the target predictions as confident (low-entropy) as the source's, structure included.

Reference:
    Vu, Jain, Bucher, Cord, Pérez. *ADVENT: Adversarial Entropy Minimization for Domain
    Adaptation in Semantic Segmentation.* CVPR 2019, Sec. 3.2, Eq. 4-5 (AdvEnt); lambda_adv =
    0.001, D's Adam at 1e-4 (Sec. 4.1; valeoai/ADVENT's `LAMBDA_ADV_MAIN`, `LEARNING_RATE_D`).
"""

import keras

from uada.methods.entropy import weighted_self_information
from uada.methods.output_space_discriminator import OutputSpaceAdversarialModel


@keras.saving.register_keras_serializable(package="uada")
class AdvEntModel(OutputSpaceAdversarialModel):
    """Output-space adversarial training on the weighted self-information maps (ADVENT's AdvEnt).

    D sees `I_c = -p_c log p_c / log C` per class, `p = softmax` of S's logits, and is trained
    to tell source maps (0) from target maps (1); R and S are trained to make the target maps
    look like source to D (`OutputSpaceAdversarialModel` says how and what is logged).

    Args:
        representation, segmentation_head, discriminator: R, S and D.
        lambda_adv: weight of the adversarial loss. Defaults to 0.001 (ADVENT).
        discriminator_learning_rate: D's Adam learning rate. Defaults to 1e-4 (ADVENT).
        **kwargs: the other `uada.methods.method_model.MethodModel` arguments.
    """

    def _discriminator_input(self, logits):
        return weighted_self_information(logits)
