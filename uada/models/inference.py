"""`predict_labels`: label maps from a segmenter (images -> logits at the input size)."""

import numpy as np


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
