"""`SelfTrainingModel`: self-training with a mean teacher's pseudo-labels (`--mode=self_training`).

    pseudo-labels:  y_t = argmax T(x_t),  confidence c = max softmax T(x_t)   (T: the teacher)
    R, S step:      min  L_seg + L_reg + q * CE(S(R(x_t)), y_t),   q = mean over target pixels
                    of [c >= threshold]  (the fraction of confident pixels)
    after:          T <- a T + (1 - a) (R, S),   a = min(1 - 1 / (n + 1), alpha)

The self-training of DACS and DAFormer without their image mixing: the teacher is an
exponential moving average (EMA) of R and S, pseudo-labels are its argmax on the target images,
and the pseudo-label loss (the mean cross-entropy over every target pixel) is weighted by the
fraction of pixels whose teacher probability reaches the threshold. `n` counts the applied
steps: the teacher starts as a copy of R and S, and `a` warms up to alpha as in DAFormer.

The teacher predicts in inference mode: its normalizations use their moving statistics, which
are the EMA of the student's moving statistics (every variable of R and S is averaged, weights
and statistics alike). With DAN those come from the source images only, so the pseudo-labels
are the predictions the trained model would make at test time, domain agnostic; with BN they
mix both domains. (DACS and DAFormer run their teacher in training mode: its batch
normalization, where the network has one, then uses the target batch's own statistics.)
The teacher never receives a gradient; it is part of the model's checkpoints.

References:
    Tranheden, Olsson, Pinto, Svensson. *DACS: Domain Adaptation via Cross-domain Mixed
    Sampling.* WACV 2021, Sec. 3 (the mean teacher, alpha = 0.99, and the confidence-weighted
    pseudo-label loss).
    Hoyer, Dai, Van Gool. *DAFormer: Improving Network Architectures and Training Strategies for
    Domain-Adaptive Semantic Segmentation.* CVPR 2022, Sec. 3.1, Eq. 3-5 (threshold 0.968;
    lhoyer/DAFormer's `dacs.py`: `alpha`, `pseudo_threshold`, the EMA's warm-up).
"""

import keras
import tensorflow as tf

from uada.methods.method_model import MethodModel
from uada.models import losses, step_guard


def pseudo_labels(teacher_logits, threshold):
    """The teacher's pseudo-labels, their confidence and which are confident.

    Args:
        teacher_logits: `[N, H, W, C]`.
        threshold: the confidence a pseudo-label needs to count as confident.

    Returns:
        `(labels, confidence, confident)`: int32 argmax `[N, H, W]`, float32 max softmax
        probability `[N, H, W]`, float32 `[N, H, W]` 1 where `confidence >= threshold`.
    """
    probabilities = tf.nn.softmax(tf.cast(teacher_logits, tf.float32))
    labels = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    confidence = tf.reduce_max(probabilities, axis=-1)
    return labels, confidence, tf.cast(confidence >= threshold, tf.float32)


def teacher_ema_factor(step, alpha):
    """The EMA factor after the `step`-th applied update: `min(1 - 1 / (step + 1), alpha)`
    (float32; 0.5 after the first, alpha from `step = 1 / (1 - alpha) - 1` on)."""
    step = tf.cast(step, tf.float32)
    return tf.minimum(1.0 - 1.0 / (step + 1.0), alpha)


@keras.saving.register_keras_serializable(package="uada")
class SelfTrainingModel(MethodModel):
    """R + S trained on the source labels and on a mean teacher's confidence-weighted target
    pseudo-labels (the module docstring has the formulas).

    The teacher `T` has R and S's architecture; it starts as a copy of them and after each
    applied step becomes `a T + (1 - a) (R, S)` for every variable (weights and moving
    statistics), `a = teacher_ema_factor(n, teacher_ema)`, `n` the applied steps. It predicts the
    target images in inference mode, outside the gradient tape's reach (`stop_gradient`): no
    gradient ever reaches it. The pseudo-label loss is `q * sum CE / P` over the `P` target
    pixels of the batch (of every replica under `tf.distribute`, where `q` is the global
    fraction too).

    Args:
        representation, segmentation_head: R and S (the student).
        teacher: the teacher, a `keras.Model` images -> logits of the same architecture as
            `segmentation_head(representation(images))`; its weights are set to the student's.
        teacher_ema: alpha, the EMA factor once warmed up. Defaults to 0.99 (DACS).
        pseudo_label_threshold: the confidence of a confident pixel. Defaults to 0.968 (DACS,
            DAFormer).
        **kwargs: the other `uada.methods.method_model.MethodModel` arguments.

    Metrics: those of `MethodModel` and `pseudo_label_loss` (the weighted loss `q * CE`),
    `pseudo_label_confidence` (the teacher's mean confidence over the target pixels) and
    `pseudo_label_kept_fraction` (`q`).
    """

    hyperparameters = ("teacher_ema", "pseudo_label_threshold")
    parts = (*MethodModel.parts, "teacher")
    method_metric_names = (
        "pseudo_label_loss", "pseudo_label_confidence", "pseudo_label_kept_fraction",
    )  # fmt: skip
    bar_metric_names = ("pseudo_label_loss", "pseudo_label_kept_fraction")

    def __init__(self, representation, segmentation_head, teacher, *, teacher_ema=0.99,
                 pseudo_label_threshold=0.968, **kwargs):  # fmt: skip
        if not 0 <= teacher_ema <= 1:
            raise ValueError(
                f"`teacher_ema` must be in [0, 1]. Received: teacher_ema={teacher_ema!r}"
            )
        if not 0 <= pseudo_label_threshold <= 1:
            raise ValueError(
                f"`pseudo_label_threshold` must be in [0, 1]. "
                f"Received: pseudo_label_threshold={pseudo_label_threshold!r}"
            )
        super().__init__(representation, segmentation_head, **kwargs)
        self.teacher_ema = float(teacher_ema)
        self.pseudo_label_threshold = float(pseudo_label_threshold)
        student = self.segmenter.weights
        if [tuple(v.shape) for v in teacher.weights] != [tuple(v.shape) for v in student]:
            raise ValueError(
                "`teacher` must have the architecture of the student "
                "`segmentation_head(representation(images))`. Received: a teacher with "
                f"{len(teacher.weights)} variables for the student's {len(student)}"
            )
        teacher.trainable = False  # its variables are never trained, only averaged
        self.teacher = teacher
        for teacher_variable, variable in self._teacher_pairs:
            teacher_variable.assign(variable)

    @classmethod
    def build(cls, representation, segmentation_head, *, network, **kwargs):
        teacher_representation, teacher_head = network(weights=None, name_prefix="teacher_")
        images = keras.Input(batch_shape=teacher_representation.inputs[0].shape, name="images")
        teacher = keras.Model(images, teacher_head(teacher_representation(images)), name="teacher")
        return cls(representation, segmentation_head, teacher, **kwargs)

    @property
    def _teacher_pairs(self):
        """`(teacher variable, student variable)` pairs, every variable of R and S."""
        return list(zip(self.teacher.weights, self.segmenter.weights, strict=True))

    def _target_loss(self, logits, images, num_source):
        teacher_logits = tf.stop_gradient(self.teacher(images[num_source:], training=False))
        labels, confidence, confident = pseudo_labels(teacher_logits, self.pseudo_label_threshold)
        # The segmentation cross-entropy's sum; every pseudo-label is a valid class index.
        loss_sum, _ = losses.segmentation_loss_sum(
            labels, logits[num_source:], num_classes=self.num_classes
        )
        # Global sums over the replicas: confident pixels, pixels, confidence.
        counts = step_guard.sum_over_replicas(
            tf.stack([
                tf.reduce_sum(confident),
                tf.cast(tf.size(confident), tf.float32),
                tf.reduce_sum(confidence),
            ])
        )  # fmt: skip
        pixels = tf.maximum(counts[1], 1.0)
        kept_fraction = counts[0] / pixels
        loss = kept_fraction * loss_sum / pixels  # this replica's share
        metrics = {
            "pseudo_label_loss": kept_fraction * step_guard.sum_over_replicas(loss_sum) / pixels,
            "pseudo_label_confidence": counts[2] / pixels,
            "pseudo_label_kept_fraction": kept_fraction,
        }
        return loss, metrics

    def _after_update(self, applied):
        # The seg optimizer's iterations count the applied steps, this one included.
        alpha = teacher_ema_factor(self.seg_optimizer.iterations, self.teacher_ema)
        for teacher_variable, variable in self._teacher_pairs:
            averaged = alpha * teacher_variable.value + (1.0 - alpha) * variable.value
            teacher_variable.assign(tf.where(applied, averaged, teacher_variable.value))
