"""Photometric augmentation of training images, in pure, stateless TensorFlow ops.

The augmentation is the original code's (docs/FIDELITY.md, *Data*).

The original code augments both domains in two independent steps, and so does `augment`:

1. **Colour**: one of five choices with equal probability: one of the four orders of the Inception
   colour distortion (brightness +-32/255, saturation [0.5, 1.5], hue +-0.2, contrast [0.5, 1.5],
   clipped to the valid range afterwards), or no change. The image is so distorted with
   probability 4/5.
2. **Blur**: one of median blur, bilateral blur or no blur with equal probability, with a kernel
   size drawn uniformly from {1, 3, 5, 7} (size 1 leaves the image unchanged).

Nothing geometric happens (no flip, crop or scaling), so labels never need to follow the image.

All randomness is drawn with `tf.random.stateless_*` from a `seed` tensor of shape `[2]`, so the
result is a pure function of (image, seed): the same eagerly, inside `tf.function` and inside
`tf.data`. Images are float32 RGB in [0, 255], the range the model takes.

Blurs, as implemented here (the original called OpenCV from a `py_func`):

- `median_blur`: the exact median of the `k x k` window around each pixel, per channel, with
  replicated borders (the edge pixel repeated, as OpenCV's `medianBlur` does); computed from the
  `k*k` shifted images with elementwise min/max only (forgetful selection, see `_median_of`),
  which is exact and much cheaper than sorting.
- `bilateral_blur`: the edge-aware average over a disc of diameter `k`: each neighbour is weighted
  by `exp(-d^2 / (2 sigma_space^2)) * exp(-|I_neighbour - I_centre|^2 / (2 sigma_color^2))`, with
  `|.|` the Euclidean RGB distance on the 0..255 scale and reflected borders. The original called
  `cv2.bilateralFilter(image, k, 35, 35)` on images in [0, 1], where a colour sigma of 35 is far
  above any colour distance, so its filter was in effect a plain average over the disc. The
  defaults reproduce that (`sigma_color=35 * 255`, `sigma_space=35`); a smaller `sigma_color`
  (e.g. 30) gives a truly edge-preserving filter.
"""

import math

import tensorflow as tf

from uada import framework_internals

BLUR_KERNEL_SIZES = (1, 3, 5, 7)

_MAX_BRIGHTNESS_DELTA = 32.0 / 255.0
_SATURATION_RANGE = (0.5, 1.5)
_MAX_HUE_DELTA = 0.2
_CONTRAST_RANGE = (0.5, 1.5)
_BILATERAL_SIGMA_COLOR = 35.0 * 255.0
_BILATERAL_SIGMA_SPACE = 35.0


def _check_kernel_size(kernel_size):
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 != 1:
        raise ValueError(
            "`kernel_size` must be a positive odd Python int. "
            f"Received: kernel_size={kernel_size!r}"
        )


def _shifted(image, kernel_size, offsets, border="REFLECT"):
    """The image shifted by each (dy, dx) in `offsets`; a list of [H, W, C].

    `border`: `"REFLECT"` (OpenCV's default, the edge pixel not repeated: `cv2.bilateralFilter`)
    or `"REPLICATE"` (the edge pixel repeated: `cv2.medianBlur`)."""
    radius = kernel_size // 2
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    if border == "REPLICATE":
        rows = tf.clip_by_value(tf.range(-radius, height + radius), 0, height - 1)
        columns = tf.clip_by_value(tf.range(-radius, width + radius), 0, width - 1)
        padded = tf.gather(tf.gather(image, rows, axis=0), columns, axis=1)
    else:
        padded = tf.pad(image, [[radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    return [
        padded[radius + dy : radius + dy + height, radius + dx : radius + dx + width, :]
        for dy, dx in offsets
    ]


def _compare_swap(values, i, j):
    """Orders values[i] <= values[j] elementwise, in place."""
    values[i], values[j] = tf.minimum(values[i], values[j]), tf.maximum(values[i], values[j])


def _median_of(values):
    """Elementwise median of an odd number of same-shaped tensors, by forgetful selection.

    A sorted window of `n // 2 + 2` values is kept; its minimum and maximum can never be the median
    once one more value arrives, so each new value replaces them (inserted in order by one pass of
    compare-swaps). Only `tf.minimum`/`tf.maximum` are used: about n^2 / 4 compare-swaps, several
    times faster on CPU than sorting the `n` values with `tf.sort` or `tf.math.top_k`.
    """
    size = len(values) // 2 + 2
    window = list(values[:size])
    for i in range(size):  # odd-even transposition sort of the first window
        for j in range(i % 2, size - 1, 2):
            _compare_swap(window, j, j + 1)
    for value in values[size:]:
        window = window[1:-1] + [value]
        for j in range(len(window) - 1, 0, -1):  # insertion of the new value
            _compare_swap(window, j - 1, j)
    return window[len(window) // 2]


def median_blur(image, kernel_size):
    """Median filter over a `kernel_size x kernel_size` window, per channel, borders replicated.

    Args:
        image: float32 `[H, W, C]`.
        kernel_size: positive odd Python int; 1 returns `image`.

    Returns:
        float32 `[H, W, C]`.
    """
    _check_kernel_size(kernel_size)
    if kernel_size == 1:
        return image
    radius = kernel_size // 2
    offsets = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    return _median_of(_shifted(image, kernel_size, offsets, border="REPLICATE"))


def bilateral_blur(
    image, kernel_size, sigma_color=_BILATERAL_SIGMA_COLOR, sigma_space=_BILATERAL_SIGMA_SPACE
):
    """Bilateral (edge-aware) average over a disc of diameter `kernel_size`.

    Args:
        image: float32 `[H, W, C]` on the 0..255 scale.
        kernel_size: positive odd Python int; 1 returns `image`.
        sigma_color: standard deviation of the colour weight, 0..255 scale. The default (35 * 255)
            matches the original's call and makes the filter a plain average over the disc.
        sigma_space: standard deviation of the spatial weight, in pixels.

    Returns:
        float32 `[H, W, C]`.
    """
    _check_kernel_size(kernel_size)
    if sigma_color <= 0 or sigma_space <= 0:
        raise ValueError(
            "`sigma_color` and `sigma_space` must be positive. "
            f"Received: sigma_color={sigma_color!r}, sigma_space={sigma_space!r}"
        )
    if kernel_size == 1:
        return image
    radius = kernel_size // 2
    offsets = [
        (dy, dx)
        for dy in range(-radius, radius + 1)
        for dx in range(-radius, radius + 1)
        if dy * dy + dx * dx <= radius * radius
    ]
    total = tf.zeros_like(image)
    norm = tf.zeros_like(image[..., :1])
    for (dy, dx), neighbour in zip(offsets, _shifted(image, kernel_size, offsets), strict=True):
        distance2 = tf.reduce_sum(tf.square(neighbour - image), axis=-1, keepdims=True)
        weight = math.exp(-(dy * dy + dx * dx) / (2.0 * sigma_space**2)) * tf.exp(
            -distance2 / (2.0 * sigma_color**2)
        )
        total += weight * neighbour
        norm += weight
    return total / norm


def _color_ops(seeds):
    """The four Inception colour operations on [0, 1] images, each with its own seed."""
    return {
        "brightness": lambda x: tf.image.stateless_random_brightness(
            x, _MAX_BRIGHTNESS_DELTA, seeds[0]
        ),
        "saturation": lambda x: tf.image.stateless_random_saturation(
            x, *_SATURATION_RANGE, seeds[1]
        ),
        "hue": lambda x: tf.image.stateless_random_hue(x, _MAX_HUE_DELTA, seeds[2]),
        "contrast": lambda x: tf.image.stateless_random_contrast(x, *_CONTRAST_RANGE, seeds[3]),
    }


# The four orders of the Inception colour distortion.
COLOR_ORDERS = (
    ("brightness", "saturation", "hue", "contrast"),
    ("saturation", "brightness", "contrast", "hue"),
    ("contrast", "hue", "brightness", "saturation"),
    ("hue", "saturation", "contrast", "brightness"),
)


def distort_color(image, seed, order):
    """Inception colour distortion in one of its four orders.

    Args:
        image: float32 `[H, W, 3]` in [0, 255].
        seed: int32/int64 tensor of shape `[2]`.
        order: Python int in 0..3, an index of `COLOR_ORDERS`.

    Returns:
        float32 `[H, W, 3]` in [0, 255].
    """
    if order not in range(len(COLOR_ORDERS)):
        raise ValueError(f"`order` must be one of 0, 1, 2, 3. Received: order={order!r}")
    ops = _color_ops(tf.unstack(tf.random.experimental.stateless_split(seed, 4)))
    x = image / 255.0
    for name in COLOR_ORDERS[order]:
        x = ops[name](x)
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0


def random_color(image, seed):
    """With probability 4/5 `distort_color` in a random order, else `image` unchanged.

    Args:
        image: float32 `[H, W, 3]` in [0, 255].
        seed: int tensor of shape `[2]`.

    Returns:
        float32 `[H, W, 3]` in [0, 255].
    """
    choice_seed, color_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    choice = tf.random.stateless_uniform([], choice_seed, 0, 5, dtype=tf.int32)
    branches = [
        lambda order=order: distort_color(image, color_seed, order)
        for order in range(len(COLOR_ORDERS))
    ]
    return framework_internals.unlowered_switch_case(choice, branches + [lambda: image])


def random_blur(image, seed):
    """Median blur, bilateral blur or none (1/3 each), kernel size uniform in {1, 3, 5, 7}.

    Args:
        image: float32 `[H, W, 3]` in [0, 255].
        seed: int tensor of shape `[2]`.

    Returns:
        float32 `[H, W, 3]` in [0, 255].
    """
    kind = tf.random.stateless_uniform([], seed, 0, 3, dtype=tf.int32)
    size_seed = tf.random.experimental.stateless_fold_in(seed, 1)
    size = tf.random.stateless_uniform([], size_seed, 0, len(BLUR_KERNEL_SIZES), dtype=tf.int32)
    branches = [lambda: image]  # kernel size 1 and "none"
    for k in BLUR_KERNEL_SIZES[1:]:
        branches.append(lambda k=k: median_blur(image, k))
    for k in BLUR_KERNEL_SIZES[1:]:
        branches.append(lambda k=k: bilateral_blur(image, k))
    # kind 0 = median, 1 = bilateral, 2 = none; size index 0 is kernel size 1 (no change).
    num_sizes = len(BLUR_KERNEL_SIZES) - 1
    index = tf.where((kind == 2) | (size == 0), 0, 1 + kind * num_sizes + tf.maximum(size - 1, 0))
    # Unlowered: an input iterator's creation makes no kernels for the 6 blurs it may not run.
    blurred = framework_internals.unlowered_switch_case(index, branches)
    return tf.clip_by_value(blurred, 0.0, 255.0)


def augment(image, seed):
    """The training augmentation of the original code: `random_color`, then `random_blur`.

    Args:
        image: float32 `[H, W, 3]` RGB in [0, 255] (other dtypes are cast to float32).
        seed: int32/int64 tensor (or sequence) of shape `[2]`; the result is a pure function of
            `(image, seed)`.

    Returns:
        float32 `[H, W, 3]` in [0, 255], with the static shape of `image`.
    """
    image = tf.cast(image, tf.float32)
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank != 1 or (seed.shape[0] is not None and seed.shape[0] != 2):
        raise ValueError(f"`seed` must have shape [2]. Received: seed with shape {seed.shape}")
    color_seed, blur_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    result = random_blur(random_color(image, color_seed), blur_seed)
    return tf.ensure_shape(result, image.shape)
