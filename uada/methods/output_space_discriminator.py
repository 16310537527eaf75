"""The output-space discriminator of AdaptSegNet and ADVENT, its losses and its adversarial step.

    maps [N, H, W, C] --4x4/2 conv 64--LReLU--128--LReLU--256--LReLU--512--LReLU--4x4/2 conv 1-->
    logits [N, H/32, W/32, 1]  (the logit of "target")

| loss | formula (BCE: sigmoid cross-entropy of a logit, mean over D's output positions) |
|---|---|
| discriminator | `(BCE(D(m_s), 0) + BCE(D(m_t), 1)) / 2`, on `m = maps(sg(logits))` |
| adversarial (R, S) | `BCE(D(m_t), 0)`: the target maps made to look like source to D |

`m` are the maps a method feeds D (`OutputSpaceAdversarialModel._discriminator_input`): the
softmax for AdaptSegNet, the weighted self-information for ADVENT. D is trained with Adam
(learning rate 1e-4, betas 0.9 and 0.99) on the learning rate's decay schedule of R and S, as
in both originals (their discriminator's rate follows the segmenter's polynomial decay).

References:
    Tsai, Hung, Schulter, Sohn, Yang, Chandraker. *Learning to Adapt Structured Output Space for
    Semantic Segmentation.* CVPR 2018, Sec. 3.2-3.3 and 4.1 (wasidennis/AdaptSegNet's
    `FCDiscriminator`, `LEARNING_RATE_D`).
    Vu, Jain, Bucher, Cord, Pérez. *ADVENT.* CVPR 2019, Sec. 3.2 and 4.1 (valeoai/ADVENT's
    `get_fc_discriminator`, `LEARNING_RATE_D`).
"""

import math

import keras
import tensorflow as tf

from uada.methods.method_model import MethodModel
from uada.models import losses, schedules

FILTERS = (64, 128, 256, 512)
LEAKY_RELU_SLOPE = 0.2
ADAM_BETAS = (0.9, 0.99)
ADAM_EPSILON = 1e-8  # PyTorch's default, the originals' optimizer


def build_output_space_discriminator(num_classes, *, filters=FILTERS, name="discriminator"):
    """Builds the fully convolutional discriminator of AdaptSegNet and ADVENT.

        maps -> [zero-pad 1, 4x4 conv stride 2, leaky ReLU 0.2] x len(filters)
             -> zero-pad 1, 4x4 conv stride 2 -> 1 logit per position

    Every conv has a bias; kernels and biases start as PyTorch's default for a conv (the
    originals'): uniform in `+-1/sqrt(fan_in)`, `fan_in = 16 * input channels`. No
    normalization. The padding of 1 on each side (the originals') halves an even size exactly:
    `[N, H, W, C] -> [N, H/32, W/32, 1]` for H and W divisible by 32.

    Args:
        num_classes: channels of the maps (the number of classes).
        filters: widths of the hidden convs. Defaults to (64, 128, 256, 512).
        name: the model name.

    Returns:
        A functional `keras.Model` from maps `[N, H, W, num_classes]` to float32 logits.
    """
    maps = keras.Input(shape=(None, None, num_classes), name="maps")
    x = maps
    channels = num_classes
    for i, width in enumerate((*filters, 1), start=1):
        last = i == len(filters) + 1
        bound = 1.0 / math.sqrt(16 * channels)  # 4 x 4 x channels inputs per output
        x = keras.layers.ZeroPadding2D(1, name=f"pad{i}")(x)
        x = keras.layers.Conv2D(
            width, 4, strides=2,
            kernel_initializer=keras.initializers.RandomUniform(-bound, bound),
            bias_initializer=keras.initializers.RandomUniform(-bound, bound),
            dtype="float32" if last else None,  # a float32 logit under mixed precision
            name="logits" if last else f"conv{i}",
        )(x)  # fmt: skip
        if not last:
            x = keras.layers.LeakyReLU(LEAKY_RELU_SLOPE, name=f"leaky_relu{i}")(x)
        channels = width
    return keras.Model(maps, x, name=name)


def discriminator_loss(logits, num_source):
    """`(BCE(D(m_s), 0) + BCE(D(m_t), 1)) / 2`: each domain's mean sigmoid cross-entropy.

    Args:
        logits: D's logits `[N, h, w, 1]`, the first `num_source` samples source (label 0), the
            rest target (label 1).
        num_source: the number of source samples.

    Returns:
        A float32 scalar.
    """
    logits = tf.cast(logits, tf.float32)
    source = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.zeros_like(logits[:num_source]), logits=logits[:num_source]
    )
    target = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.ones_like(logits[num_source:]), logits=logits[num_source:]
    )
    return (tf.reduce_mean(source) + tf.reduce_mean(target)) / 2.0


def adversarial_loss(target_logits):
    """`BCE(D(m_t), 0)`: the mean sigmoid cross-entropy of D's target logits against the source
    label (float32 scalar); R and S minimize it to fool D."""
    target_logits = tf.cast(target_logits, tf.float32)
    return tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.zeros_like(target_logits), logits=target_logits
        )
    )


class OutputSpaceAdversarialModel(MethodModel):
    """R + S trained to fool a discriminator D of their target outputs; D trained to tell them.

        R, S step:  min  L_seg + L_reg + lambda_adv * BCE(D(m(logits_t)), 0)
        D step:     min  (BCE(D(m(sg(logits_s))), 0) + BCE(D(m(sg(logits_t))), 1)) / 2

    `m` is the subclass's `_discriminator_input`. As in the originals, the adversarial term of
    R and S goes through D as it is at the start of the step, and D trains on the predictions
    of the same forward pass (before R and S move); D's loss is computed on both domains' maps
    at the input size, R and S's only on the target's. No gradient of the D step reaches R or
    S, and the R, S step does not change D.

    Args:
        representation, segmentation_head: R and S.
        discriminator: D, maps `[N, H, W, classes]` -> logits
            (`build_output_space_discriminator`).
        lambda_adv: weight of the adversarial loss. Defaults to 0.001.
        discriminator_learning_rate: D's Adam learning rate (betas 0.9, 0.99), decayed on R
            and S's schedule. Defaults to 1e-4.
        **kwargs: the other `uada.methods.method_model.MethodModel` arguments.

    Metrics: those of `MethodModel` and `adversarial_loss` (unweighted), `discriminator_loss`
    and `discriminator_accuracy` (the fraction of D's output positions, source and target
    pooled, whose domain D tells right).
    """

    hyperparameters = ("lambda_adv", "discriminator_learning_rate")
    parts = (*MethodModel.parts, "discriminator")
    method_metric_names = ("adversarial_loss", "discriminator_loss", "discriminator_accuracy")
    bar_metric_names = ("discriminator_loss", "discriminator_accuracy")

    def __init__(self, representation, segmentation_head, discriminator, *, lambda_adv=0.001,
                 discriminator_learning_rate=1e-4, **kwargs):  # fmt: skip
        if not lambda_adv >= 0:
            raise ValueError(f"`lambda_adv` must be >= 0. Received: lambda_adv={lambda_adv!r}")
        if not discriminator_learning_rate >= 0:
            raise ValueError(
                f"`discriminator_learning_rate` must be >= 0. "
                f"Received: discriminator_learning_rate={discriminator_learning_rate!r}"
            )
        super().__init__(representation, segmentation_head, **kwargs)
        self.discriminator = discriminator
        self.lambda_adv = float(lambda_adv)
        self.discriminator_learning_rate = float(discriminator_learning_rate)

    @classmethod
    def build(cls, representation, segmentation_head, *, network, **kwargs):
        del network
        num_classes = kwargs.get("num_classes", 19)
        discriminator = build_output_space_discriminator(num_classes)
        return cls(representation, segmentation_head, discriminator, **kwargs)

    def _discriminator_input(self, logits):
        """The maps D sees, float32 `[N, H, W, classes]`, of S's logits."""
        raise NotImplementedError

    @property
    def domain_variables(self):
        return self.discriminator.trainable_variables

    def _default_domain_optimizer(self, learning_rate, decay_epochs, decay_factor):
        del learning_rate  # D has its own
        schedule = schedules.learning_rate_schedule(
            self.discriminator_learning_rate, steps_per_epoch=self.steps_per_epoch,
            decay_epochs=decay_epochs, factor=decay_factor,
        )  # fmt: skip
        beta_1, beta_2 = ADAM_BETAS
        return keras.optimizers.Adam(
            schedule, beta_1=beta_1, beta_2=beta_2, epsilon=ADAM_EPSILON, name="discriminator_adam"
        )

    def _target_loss(self, logits, images, num_source):
        del images
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        target_maps = self._discriminator_input(logits[num_source:])
        adversarial = adversarial_loss(self.discriminator(target_maps, training=True))
        return self.lambda_adv * adversarial / replicas, {"adversarial_loss": adversarial}

    def _domain_step(self, logits, num_source, finite):
        maps = self._discriminator_input(logits)

        def loss():
            d_logits = self.discriminator(maps, training=True)  # [N, H/32, W/32, 1]
            return discriminator_loss(d_logits, num_source), d_logits

        finite, overflow, d_loss, d_logits = self._domain_update(loss, finite)
        metrics = {
            "discriminator_loss": d_loss,
            "discriminator_accuracy": losses.pooled_domain_accuracy(d_logits, num_source),
        }
        return finite, overflow, metrics
