"""Label maps from a segmenter (images -> logits at the input size).

- `predict_labels`: train ids at the model's input size.
- `resized_label_function`: train ids at any size: the logits are resized bilinearly to it, then
  the argmax is taken (`python -m uada.predict` at each image's own size; the same rule as
  `python -m uada.evaluate --resolution=full`).
"""

import numpy as np
import tensorflow as tf


def predict_labels(segmenter, images, batch_size=None):
    """Returns the predicted train ids of each pixel.

    Args:
        segmenter: a model from float32 RGB images `[N, H, W, 3]` in [0, 255] to logits
            `[N, H, W, num_classes]`, e.g. `UADAModel.segmenter` (inference mode: moving
            statistics for every image).
        images: a NumPy array or tensor `[N, H, W, 3]`, or a `tf.data.Dataset` of image batches.
        batch_size: batch size of `segmenter.predict` for array inputs.

    Returns:
        An int32 NumPy array `[N, H, W]`.
    """
    logits = segmenter.predict(images, batch_size=batch_size, verbose=0)
    return np.argmax(logits, axis=-1).astype(np.int32)


def resized_label_function(segmenter):
    """Returns `labels(images, size)`: the train ids of `images` at `size`.

        labels = argmax_c resize_bilinear(segmenter(images), size)[..., c]

    Resizing the logits before the argmax gives smoother boundaries than resizing the label map
    with nearest neighbour; at the model's own size the resize is the identity (sample points on
    pixel centres).

    Args:
        segmenter: as in `predict_labels` (inference mode).

    Returns:
        A `tf.function` of float32 images `[N, H, W, 3]` in [0, 255] at the model's input size and
        `size = (height, width)`, returning an int32 tensor `[N, height, width]`. Pass `size` as
        an int32 tensor: one trace then serves every size.
    """

    @tf.function(reduce_retracing=True, autograph=False)
    def labels(images, size):
        logits = segmenter(images, training=False)
        logits = tf.image.resize(tf.cast(logits, tf.float32), size, method="bilinear")
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    return labels
