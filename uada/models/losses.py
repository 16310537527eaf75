"""The losses of UADA training (Eq. 2 of the paper; docs/FIDELITY.md, *Training*).

Every batch is laid out source first: the first `num_source` samples are source, the rest target.

    L_seg  = mean over valid source pixels of softmax cross-entropy (label 255 ignored)
    L_dom  = clip(mean over all positions of sigmoid_ce(D(z), 0 for source / 1 for target), 0, 5)
    L_conf = mean over all positions of c, c = clip(-log(1 - sigmoid(D(z)) + 1e-9), 0, 2) on
             target positions and 0 on source positions
    L_reg  = 0.00017 * sum(w^2) / 2 over the conv kernels of R and S and S's two logit biases

Clipping is `clip_by_value`: the gradient is zero where the value is clipped.
`confusion_clipped_fraction` measures how many target positions that leaves without a gradient.
"""

import tensorflow as tf

from uada.data.labels import IGNORE_LABEL

DOMAIN_LOSS_CLIP = 5.0
CONFUSION_LOSS_CLIP = 2.0
CONFUSION_EPSILON = 1e-9


def segmentation_loss_sum(labels, logits, *, num_classes):
    """Returns the sum of the per-pixel cross-entropy over valid pixels and their number.

    A pixel is valid when its label is in `0 .. num_classes - 1`. Every other pixel (the ignore
    label 255, and any invalid label, which `assert_valid_labels` reports) contributes nothing to
    the sum or its gradient: its label is replaced by 0 before the cross-entropy, so no
    out-of-range index reaches the kernel (which returns NaN silently on GPU and under XLA), and
    its loss is selected away.

    Args:
        labels: int tensor `[N, H, W]`.
        logits: float tensor `[N, H, W, num_classes]`.
        num_classes: number of classes.

    Returns:
        `(loss_sum, valid_count)`, float32 scalars. The mean is `loss_sum / max(valid_count, 1)`;
        the division is left to the caller so that it can use a global count across replicas.
    """
    labels = tf.cast(labels, tf.int32)
    valid = (labels >= 0) & (labels < num_classes)  # [N, H, W]
    safe_labels = tf.where(valid, labels, tf.zeros_like(labels))
    per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=safe_labels, logits=tf.cast(logits, tf.float32)
    )
    per_pixel = tf.where(valid, per_pixel, tf.zeros_like(per_pixel))
    return tf.reduce_sum(per_pixel), tf.reduce_sum(tf.cast(valid, tf.float32))


def segmentation_loss(labels, logits, *, num_classes=19):
    """L_seg: softmax cross-entropy averaged over the valid pixels (0 when there are none).

    Pixels labelled 255 (or anything outside `0..num_classes-1`) are left out.

    Args:
        labels: int tensor `[N, H, W]`, train ids or the ignore label 255.
        logits: float tensor `[N, H, W, num_classes]`.
        num_classes: number of classes. Defaults to 19.

    Returns:
        A float32 scalar.
    """
    loss_sum, count = segmentation_loss_sum(labels, logits, num_classes=num_classes)
    return loss_sum / tf.maximum(count, 1.0)


def _invalid_labels(labels, num_classes, ignore_label):
    labels = tf.cast(labels, tf.int32)
    return labels, ((labels < 0) | (labels >= num_classes)) & (labels != ignore_label)


def invalid_label_count(labels, *, num_classes=19, ignore_label=IGNORE_LABEL):
    """Returns the number of labels that are neither a class id nor `ignore_label` (int32)."""
    _, invalid = _invalid_labels(labels, num_classes, ignore_label)
    return tf.reduce_sum(tf.cast(invalid, tf.int32))


def assert_valid_labels(labels, *, num_classes=19, ignore_label=IGNORE_LABEL, name="labels"):
    """Raises `tf.errors.InvalidArgumentError` if a label is not in `0..num_classes-1` or
    `ignore_label`; returns the number of such labels.

    The check is a `tf.debugging.Assert`, which raises in eager and graph execution. XLA compiles
    assertions away; callers that may run under XLA must also act on the returned count (the UADA
    model skips the step and stops training with this same error).

    Args:
        labels: int tensor of any shape.
        num_classes: number of classes. Defaults to 19.
        ignore_label: the label of pixels without ground truth. Defaults to 255.
        name: what the labels are called in the message.

    Returns:
        The number of invalid labels, an int32 scalar.
    """
    labels, invalid = _invalid_labels(tf.reshape(labels, [-1]), num_classes, ignore_label)
    count = tf.reduce_sum(tf.cast(invalid, tf.int32))
    example = tf.gather(labels, tf.argmax(tf.cast(invalid, tf.int32)))
    assert_op = tf.debugging.Assert(
        tf.equal(count, 0),
        [
            f"`{name}` must hold class ids 0..{num_classes - 1} or the ignore label "
            f"{ignore_label}. Number of other values:",
            count,
            "for example:",
            example,
        ],
        name="assert_valid_labels",
    )
    # Whatever depends on the count runs after the check (eager mode has raised already).
    with tf.control_dependencies([] if assert_op is None else [assert_op]):
        return tf.identity(count)


def _is_target(logits, num_source):
    """Float `[N, 1, ..., 1]`: 0 for the first `num_source` samples, 1 for the rest."""
    batch = tf.shape(logits)[0]
    is_target = tf.cast(tf.range(batch) >= num_source, tf.float32)
    return tf.reshape(is_target, [-1] + [1] * (len(logits.shape) - 1))


def domain_loss(logits, num_source, *, clip=DOMAIN_LOSS_CLIP):
    """L_dom: sigmoid cross-entropy of D's logits against the domain, clipped to [0, clip].

    Args:
        logits: D's logits `[N, h, w, 1]`, source samples first.
        num_source: number of leading source samples (label 0); the rest are target (label 1).
        clip: upper clip of the mean loss. Defaults to 5 (no gradient above it).

    Returns:
        A float32 scalar.
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.broadcast_to(_is_target(logits, num_source), tf.shape(logits))
    per_position = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    return tf.clip_by_value(tf.reduce_mean(per_position), 0.0, clip)


def confusion_loss(logits, num_source, *, clip=CONFUSION_LOSS_CLIP, epsilon=CONFUSION_EPSILON):
    """L_conf: pushes target positions of Z to look like source to D.

        c = clip(-log(1 - sigmoid(logit) + epsilon), 0, clip) on target positions, 0 on source
        L_conf = mean of c over all positions (source and target)

    `1 - sigmoid(l)` is computed as `sigmoid(-l)`, equal in exact arithmetic and exact in float
    for large logits.

    Args:
        logits: D's logits `[N, h, w, 1]`, source samples first.
        num_source: number of leading source samples.
        clip: upper clip per position. Defaults to 2 (no gradient above it).
        epsilon: added inside the log. Defaults to 1e-9.

    Returns:
        A float32 scalar.
    """
    logits = tf.cast(logits, tf.float32)
    per_position = tf.clip_by_value(_confusion_per_position(logits, epsilon), 0.0, clip)
    per_position = tf.where(
        _is_target(logits, num_source) > 0, per_position, tf.zeros_like(per_position)
    )
    return tf.reduce_mean(per_position)


def _confusion_per_position(logits, epsilon):
    """`-log(1 - sigmoid(l) + epsilon)` per position, unclipped, with `1 - sigmoid(l)` computed
    as `sigmoid(-l)` (float32 logits)."""
    return -tf.math.log(tf.sigmoid(-logits) + epsilon)


def confusion_clipped_fraction(
    logits, num_source, *, clip=CONFUSION_LOSS_CLIP, epsilon=CONFUSION_EPSILON
):
    """Fraction of the target positions whose confusion term is clipped (gets no gradient).

        c = -log(1 - sigmoid(logit) + epsilon)   (the term of `confusion_loss` before its clip)
        fraction = #{target positions with c < 0 or c > clip} / #{target positions}

    With the defaults, `c > 2` where D's target probability `sigmoid(logit)` exceeds
    `1 - e^-2 ~ 0.865`: there `clip_by_value` gives Z no gradient, so a D that is confident on
    a target position no longer pushes it toward the source. Source positions never count.

    Args:
        logits: D's logits `[N, h, w, 1]`, source samples first.
        num_source: number of leading source samples.
        clip: upper clip per position, as in `confusion_loss`. Defaults to 2.
        epsilon: added inside the log, as in `confusion_loss`. Defaults to 1e-9.

    Returns:
        A float32 scalar in [0, 1] (0 when there are no target positions).
    """
    logits = tf.cast(logits, tf.float32)
    per_position = _confusion_per_position(logits, epsilon)
    clipped = tf.cast((per_position < 0.0) | (per_position > clip), tf.float32)
    is_target = tf.broadcast_to(_is_target(logits, num_source), tf.shape(logits))
    return tf.reduce_sum(clipped * is_target) / tf.maximum(tf.reduce_sum(is_target), 1.0)


def pooled_domain_accuracy(logits, num_source):
    """Fraction of all positions, source and target pooled, whose domain D predicts correctly
    (logit > 0 means target); the step's `domain_accuracy` metric."""
    logits = tf.cast(logits, tf.float32)
    predicted_target = tf.cast(logits > 0, tf.float32)
    correct = tf.cast(tf.equal(predicted_target, _is_target(logits, num_source)), tf.float32)
    return tf.reduce_mean(correct)


def l2_regularization(kernels, l2=8.5e-5):
    """L_reg = l2 * sum(w^2) over `kernels` (0.00017 * sum(w^2) / 2 with the default, Keras'
    `l2(8.5e-5)`), in float32."""
    if not kernels:
        return tf.constant(0.0)
    return l2 * tf.add_n([tf.reduce_sum(tf.square(tf.cast(k, tf.float32))) for k in kernels])
