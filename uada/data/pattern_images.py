"""A procedural pretraining set for the demo's backbone: shapes and patterns in random styles.

The paper starts its backbone from ImageNet weights: features learned on a different task
(classification), different content (objects, not street scenes) and a wide variety of looks.
This module is the demo's analogue of ImageNet. `python -m uada.pretrain` trains the small
`resnet_tiny` on it and writes weights that `--weights=FILE` loads like ImageNet weights for
ResNet-50, so a demo run can start from generic low-level features (edges, corners, colour and
texture contrasts) instead of random ones.

It is built to share nothing with the demo domains (`uada.data.demo_generator`) but the camera-look
renderer:

- the task is classification of the one figure in an image into `NUM_CLASSES` classes
  (`CLASS_NAMES`): six outlines (ellipse, rectangle, triangle, star, ring, cross) filled with a
  flat colour, and four patterns (stripes, checker, dots, zigzag) filling an ellipse or rectangle;
  no street scene, no street class;
- every image draws its own style from wide ranges, independently of the label: figure,
  background and pattern colours, the background's gradient and texture, and the camera look of
  `uada.data.demo_generator.render` (texture amplitude 0-0.35, blur sigma 0-1.5 px, saturation
  0-1.6, per-channel colour cast 0.65-1.35, brightness 0.45-1.45, contrast 0.5-1.4, vignette
  0-0.4, noise 0-14). The demo domains' three fixed looks (`uada.data.demo_generator.domain_style`)
  are not used: the pretraining set is style-diverse as ImageNet is, not a fourth domain.

An example is fixed by `(seed, index)`: `np.random.default_rng([seed, index])` draws the label,
the figure and the style, in that order.

Example:

```python
from uada.data import pattern_images

image, label = pattern_images.draw_example(seed=0, index=7)  # uint8 [64, 64, 3], int in [0, 10)
images, labels = pattern_images.draw_batch(seed=0, start=0, count=32)
```
"""

import numpy as np
from PIL import Image, ImageDraw

from uada.data.demo_generator import check_image_size, render

CLASS_NAMES = (
    "ellipse", "rectangle", "triangle", "star", "ring", "cross",
    "stripes", "checker", "dots", "zigzag",
)  # fmt: skip
NUM_CLASSES = len(CLASS_NAMES)
# The classes whose figure is a pattern inside an ellipse or rectangle (the rest are outlines).
_PATTERNS = ("stripes", "checker", "dots", "zigzag")


def draw_example(seed, index, image_size=(64, 64)):
    """Draws one example of the pretraining set.

    Args:
        seed: integer seed of the whole set; with `index` it fixes the example.
        index: non-negative integer index of the example.
        image_size: `(height, width)` of the image, both at least 16.

    Returns:
        `(image, label)`: uint8 RGB `[H, W, 3]` and an int in `[0, NUM_CLASSES)`.
    """
    height, width = check_image_size(image_size)
    rng = np.random.default_rng([int(seed), int(index)])
    label = int(rng.integers(NUM_CLASSES))
    mask, pattern = _figure(rng, CLASS_NAMES[label], height, width)
    image = _compose(rng, mask, pattern)
    style = {
        "texture": rng.uniform(0.0, 0.35) * (rng.random() < 0.7),
        "blur": rng.uniform(0.0, 1.5) * (rng.random() < 0.5),
        "saturation": rng.uniform(0.0, 1.6),
        "gain": tuple(rng.uniform(0.65, 1.35, size=3)),
        "brightness": rng.uniform(0.45, 1.45),
        "contrast": rng.uniform(0.5, 1.4),
        "haze": None,
        "vignette": rng.uniform(0.0, 0.4) * (rng.random() < 0.3),
        "noise": rng.uniform(0.0, 14.0) * (rng.random() < 0.6),
    }
    return render(rng, image, 0, style), label


def draw_batch(seed, start, count, image_size=(64, 64)):
    """Draws the examples `start, ..., start + count - 1` of the set.

    Args:
        seed: integer seed of the set.
        start: index of the first example.
        count: number of examples.
        image_size: `(height, width)` of the images.

    Returns:
        `(images, labels)`: uint8 `[count, H, W, 3]` and int32 `[count]`.
    """
    height, width = check_image_size(image_size)
    examples = [draw_example(seed, start + i, image_size) for i in range(count)]
    images = (
        np.stack([image for image, _ in examples])
        if examples
        else np.zeros((0, height, width, 3), np.uint8)
    )
    return images, np.asarray([label for _, label in examples], np.int32)


def _figure(rng, name, height, width):
    """The figure of class `name`: (mask float [H, W] in {0, 1}, pattern float [H, W] in {0, 1}).

    The pattern is 1 everywhere for an outline class; for a pattern class it alternates inside
    the mask, which is then an ellipse or a rectangle.
    """
    size = min(height, width)
    radius = rng.uniform(0.22, 0.42) * size
    center = (rng.uniform(0.35, 0.65) * width, rng.uniform(0.35, 0.65) * height)
    angle = rng.uniform(0, 2 * np.pi)
    aspect = rng.uniform(0.6, 1.0)
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)

    def polygon(points, fill=255):
        """Draws `points` ([K, 2] in units of `radius`, around the origin) rotated and placed."""
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        xy = radius * np.asarray(points) @ rotation.T + center
        draw.polygon([tuple(p) for p in xy], fill=fill)

    def ellipse(scale=1.0, shift=(0.0, 0.0)):
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return np.stack([scale * np.cos(t) + shift[0], scale * aspect * np.sin(t) + shift[1]], 1)

    def rectangle(half_width, half_height):
        return [(-half_width, -half_height), (half_width, -half_height),
                (half_width, half_height), (-half_width, half_height)]  # fmt: skip

    if name in _PATTERNS:
        if rng.random() < 0.5:
            polygon(ellipse())
        else:
            polygon(rectangle(1.0, aspect))
    elif name == "ellipse":
        polygon(ellipse())
    elif name == "rectangle":
        polygon(rectangle(0.9, 0.9 * aspect))
    elif name == "triangle":
        t = np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        polygon(np.stack([np.cos(t), np.sin(t)], 1))
    elif name == "star":
        points = int(rng.integers(5, 8))
        t = np.pi / 2 + np.arange(2 * points) * np.pi / points
        r = np.where(np.arange(2 * points) % 2 == 0, 1.0, rng.uniform(0.35, 0.5))
        polygon(np.stack([r * np.cos(t), r * np.sin(t)], 1))
    elif name == "ring":
        polygon(ellipse())
        polygon(ellipse(scale=rng.uniform(0.45, 0.65)), fill=0)
    else:  # cross
        arm = rng.uniform(0.22, 0.35)
        polygon(rectangle(1.0, arm))
        polygon(rectangle(arm, 1.0))
    mask = np.asarray(mask, np.float32) / 255.0
    if name not in _PATTERNS:
        return mask, np.ones_like(mask)
    # Pattern coordinates: rotated by their own angle, in periods of 5-12 px.
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    period = rng.uniform(5.0, 12.0)
    u = (np.cos(theta) * cols + np.sin(theta) * rows) / period
    v = (-np.sin(theta) * cols + np.cos(theta) * rows) / period
    if name == "stripes":
        pattern = np.floor(u) % 2
    elif name == "checker":
        pattern = (np.floor(u) + np.floor(v)) % 2
    elif name == "dots":
        pattern = ((u % 1 - 0.5) ** 2 + (v % 1 - 0.5) ** 2 < 0.09).astype(np.float32)
    else:  # zigzag: stripes along a triangle wave
        pattern = np.floor(u + 0.5 * np.abs(2 * (v % 1) - 1)) % 2
    return mask, pattern.astype(np.float32)


def _compose(rng, mask, pattern):
    """Paints the figure onto a textured, shaded background; returns float RGB `[H, W, 3]`."""
    height, width = mask.shape
    background, figure, second = (rng.uniform(0, 255, size=3) for _ in range(3))
    # The figure stands out from the background in colour and in brightness (which survives a
    # desaturating style), and a pattern from its second colour: else there is no task.
    while np.abs(figure - background).max() < 60 or abs(figure.mean() - background.mean()) < 25:
        figure = rng.uniform(0, 255, size=3)
    while np.abs(figure - second).max() < 60:
        second = rng.uniform(0, 255, size=3)
    # Background: a linear shade in a random direction and a coarse random texture of its own.
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * cols / width + np.sin(direction) * rows / height)[..., None]
    image = background * (1.0 + rng.uniform(0.0, 0.6) * (ramp - 0.5))
    cells = int(rng.integers(2, 9))
    blotches = rng.standard_normal((cells, cells, 3))
    blotches = (
        np.asarray(
            Image.fromarray(((blotches + 3) * 40).clip(0, 255).astype(np.uint8)).resize(
                (width, height), Image.BILINEAR
            ),
            np.float32,
        )
        / 40.0
        - 3.0
    )
    image = image + rng.uniform(0.0, 30.0) * blotches
    paint = np.where(pattern[..., None] > 0, figure, second)
    return np.clip(image * (1 - mask[..., None]) + paint * mask[..., None], 0, 255)
