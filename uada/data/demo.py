"""Procedural demo domains: small street scenes in a *source*, a *target* and an *unseen* look.

The demo domains let every part of uada (data preparation, training, evaluation, the retrieval
curve) run in minutes on a CPU without downloading a dataset. They stand in for GTA5 (source),
Cityscapes (target) and an unseen domain (Mapillary/ApolloScape) and are written in the same folder
layouts, so the same TFDS builders read them:

- `root/source/` in the GTA5 layout: `images/00001.png ...` (RGB) and `labels/00001.png ...`,
  palette ("P") PNGs whose indices are Cityscapes *label ids* (road=7, car=26, ...). No `split.mat`
  is written, so the GTA5 builder applies its deterministic 3:1 train/val split.
- `root/target/` and `root/unseen/` in the Cityscapes layout:
  `leftImg8bit/{train,val}/<city>/<city>_<seq>_000019_leftImg8bit.png` and
  `gtFine/{train,val}/<city>/<city>_<seq>_000019_gtFine_labelIds.png` (greyscale label ids). Cities:
  target train `alderton`, `brackley`; target val `carwick`; unseen train `eastmoor`; unseen val
  `dunmore`.

Every domain draws the same kind of scene (painter's order, far to near): sky; a row of buildings
with windows, walls and trees along the horizon; terrain, sidewalk and road (with lane marks) in
perspective toward a vanishing point; fences; poles carrying traffic signs or traffic lights; cars,
trucks and buses on the road; persons on the sidewalks; riders on bicycles and motorcycles near the
kerb. The label map is drawn with exactly the same shapes as the image (no anti-aliasing), so every
pixel's label is exact. 18 of the 19 classes occur; `train` (id 16) never does.

The domains differ in *appearance* and in *content*, both set by `domain_style(domain)`; its
parameters (source / target / unseen):

- `horizon`: range of the horizon row as a fraction of the height (camera pitch):
  0.38-0.48 / 0.30-0.40 / 0.46-0.56.
- `road_width`: road half-width at the bottom row, fraction of the width (camera height):
  0.40-0.50 / 0.50-0.65 / 0.30-0.42.
- `counts`: (min, max) objects per image of cars, trucks, buses, persons, riders, poles, trees:
  many cars / more persons, riders and trees / fewer of most.
- `saturation`: colour saturation factor: 1.3 / 0.75 / 0.6.
- `texture`: amplitude of multiplicative low- and high-frequency texture: 0 / 0.12 / 0.08.
- `blur`: Gaussian blur sigma in pixels (optics): 0 / 0.8 / 0.6.
- `noise`: sensor noise standard deviation on the 0..255 scale: 0 / 5 / 9.
- `gain`: per-channel (R, G, B) colour cast: (1, 1, 1) / (1, 1, 0.82) / (1, 0.8, 0.95).
- `brightness`: exposure factor: 1.0 / 0.95 / 0.55.
- `contrast`: contrast factor around the image mean: 1.0 / 0.8 / 0.9.
- `vignette`: darkening at the corners: 0 / 0.35 / 0.2.
- `haze`: (strength, RGB colour) of distance haze: none / none / (0.55, dusk purple).
- `ego_vehicle`: the ego car's bonnet at the bottom (label id 1, ignored): no / yes / no.

The differences between the domains are grouped into named **shift factors** (`FACTORS`), each a
set of style parameters; `domain_style(domain, shift)` gives a domain its own value of every
parameter of the factors in `shift` and the source's value of every other parameter, so each
factor can be switched on or off per run (`--demo_shift`, `uada.config.Config.demo_shift`):

| factor | kind | parameters |
|---|---|---|
| `color` | appearance | `saturation`, `gain` |
| `texture` | appearance | `texture` |
| `blur` | appearance | `blur` |
| `noise` | appearance | `noise` |
| `exposure` | appearance | `brightness`, `contrast`, `vignette` |
| `haze` | appearance | `haze` |
| `camera` | layout | `horizon`, `road_width`, `ego_vehicle` |
| `objects` | layout (class frequencies) | `counts` |

The groups (`SHIFT_GROUPS`): `full` (every factor: the default, the demo as it always was),
`appearance` (`color`, `texture`, `blur`, `noise`, `exposure`, `haze`: the same scenes drawn
with the same layout and class frequencies, only the camera look differs) and `layout`
(`camera`, `objects`: the look of the source, other scene geometry and class frequencies).
`none` makes every domain draw like the source (no shift at all). `class_frequencies` measures
each domain's pixel frequency per class; `python -m uada.demo` prints it.

So the source looks like a game (flat colours, hard edges, saturated), the target like a camera
(texture, blur, warm cast, vignetting, noise, a higher horizon and more pedestrians), and the unseen
domain like a hazy dusk seen from a lower camera. The shift is sized to be clearly visible, not
tuned to favour any method.

Example:

```python
from uada.data import demo

demo.generate("demo_data", seed=0)
demo.generate("demo_appearance", seed=0, shift=("appearance",))  # same layout, other look
```

or from a shell: `python -m uada.demo --output=demo_data --seed=0 [--shift=appearance]`.
"""

import json
import pathlib

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from uada.data.labels import CLASS_NAMES, IGNORE_LABEL, PALETTE, lookup_table
from uada.names import SHIFT_NAMES

DOMAINS = ("source", "target", "unseen")

# Shift factor -> the style parameters it sets (the module docstring's table).
FACTORS = {
    "color": ("saturation", "gain"),
    "texture": ("texture",),
    "blur": ("blur",),
    "noise": ("noise",),
    "exposure": ("brightness", "contrast", "vignette"),
    "haze": ("haze",),
    "camera": ("horizon", "road_width", "ego_vehicle"),
    "objects": ("counts",),
}
APPEARANCE_FACTORS = ("color", "texture", "blur", "noise", "exposure", "haze")
LAYOUT_FACTORS = ("camera", "objects")
# Group name -> its factors; a shift is a list of group and factor names.
SHIFT_GROUPS = {
    "full": tuple(FACTORS),
    "appearance": APPEARANCE_FACTORS,
    "layout": LAYOUT_FACTORS,
    "none": (),
}

# Cityscapes folder layouts: split -> cities.
TARGET_CITIES = {"train": ("alderton", "brackley"), "val": ("carwick",)}
UNSEEN_CITIES = {"train": ("eastmoor",), "val": ("dunmore",)}

# Cityscapes label id of the ego vehicle; it maps to the ignore label.
_EGO_VEHICLE_LABEL_ID = 1

_TRAIN_ID = {name: i for i, name in enumerate(CLASS_NAMES)}

# The world's base colours (RGB), shared by all domains; each domain's style changes their look.
_BASE_COLORS = {
    "road": (92, 88, 96),
    "sidewalk": (168, 156, 146),
    "building": (150, 118, 96),
    "wall": (190, 176, 150),
    "fence": (130, 100, 70),
    "pole": (120, 122, 128),
    "traffic light": (40, 40, 36),
    "traffic sign": (230, 200, 30),
    "vegetation": (70, 130, 45),
    "terrain": (140, 160, 80),
    "sky": (110, 170, 235),
    "person": (60, 60, 150),
    "rider": (200, 60, 40),
    "car": (180, 30, 30),
    "truck": (220, 220, 220),
    "bus": (240, 160, 20),
    "bicycle": (30, 30, 30),
    "motorcycle": (20, 20, 60),
}
_BUILDING_COLORS = ((150, 118, 96), (180, 170, 150), (120, 120, 130), (200, 150, 110), (95, 90, 85))
_VEHICLE_COLORS = (
    (180, 30, 30),
    (30, 60, 170),
    (230, 230, 230),
    (25, 25, 25),
    (140, 140, 150),
    (40, 120, 60),
    (210, 180, 40),
)
_CLOTHES_COLORS = ((60, 60, 150), (30, 30, 30), (150, 40, 40), (200, 200, 190), (90, 120, 60))


def shift_factors(shift=("full",)):
    """The factors of a shift: a list of factor and group names -> a sorted tuple of factors.

    Args:
        shift: names from `SHIFT_NAMES` (groups expand to their factors), e.g. `("appearance",)`
            or `("color", "camera")`.

    Returns:
        The factors, in `FACTORS` order, e.g. `("color", "camera")`.

    Raises:
        ValueError: a name is not in `SHIFT_NAMES`, or `shift` is empty.
    """
    if isinstance(shift, str):
        shift = tuple(name.strip() for name in shift.split(","))
    unknown = [name for name in shift if name not in SHIFT_NAMES]
    if unknown or not shift:
        raise ValueError(
            f"`shift` must be a non-empty list of shift groups {list(SHIFT_GROUPS)} or factors "
            f"{list(FACTORS)}. Received: shift={tuple(shift)!r}"
        )
    chosen = set()
    for name in shift:
        chosen.update(SHIFT_GROUPS.get(name, (name,)))
    return tuple(factor for factor in FACTORS if factor in chosen)


def shift_name(shift=("full",)):
    """A short name of a shift: its group's name if it is exactly a group, else its factors
    joined by `+` (e.g. `"appearance"`, `"color+camera"`)."""
    factors = shift_factors(shift)
    for group, members in SHIFT_GROUPS.items():
        if factors == members:
            return group
    return "+".join(factors)


def domain_style(domain, shift=("full",)):
    """Returns the style parameters of a demo domain (see the module docstring for their meaning).

    Args:
        domain: one of `"source"`, `"target"`, `"unseen"`.
        shift: the shift factors in effect (`shift_factors`); the domain takes the source's value
            of every parameter of the other factors. Defaults to every factor.

    Returns:
        A dict with the keys `horizon`, `road_width`, `counts`, `saturation`, `texture`, `blur`,
        `noise`, `gain`, `brightness`, `contrast`, `vignette`, `haze`, `ego_vehicle`.
    """
    own, source, shifted = _own_style(domain), _own_style("source"), shift_factors(shift)
    for factor, parameters in FACTORS.items():
        if factor not in shifted:
            own.update({parameter: source[parameter] for parameter in parameters})
    return own


def _own_style(domain):
    """The domain's own value of every style parameter (the full shift)."""
    if domain == "source":
        return {
            "horizon": (0.38, 0.48),
            "road_width": (0.40, 0.50),
            "counts": {
                "car": (3, 7),
                "truck": (0, 2),
                "bus": (0, 1),
                "person": (0, 3),
                "rider": (0, 1),
                "pole": (1, 3),
                "tree": (1, 3),
            },
            "saturation": 1.3,
            "texture": 0.0,
            "blur": 0.0,
            "noise": 0.0,
            "gain": (1.0, 1.0, 1.0),
            "brightness": 1.0,
            "contrast": 1.0,
            "vignette": 0.0,
            "haze": None,
            "ego_vehicle": False,
        }
    if domain == "target":
        return {
            "horizon": (0.30, 0.40),
            "road_width": (0.50, 0.65),
            "counts": {
                "car": (1, 4),
                "truck": (0, 1),
                "bus": (0, 1),
                "person": (2, 7),
                "rider": (0, 3),
                "pole": (2, 5),
                "tree": (2, 6),
            },
            "saturation": 0.75,
            "texture": 0.12,
            "blur": 0.8,
            "noise": 5.0,
            "gain": (1.0, 1.0, 0.82),
            "brightness": 0.95,
            "contrast": 0.8,
            "vignette": 0.35,
            "haze": None,
            "ego_vehicle": True,
        }
    if domain == "unseen":
        return {
            "horizon": (0.46, 0.56),
            "road_width": (0.30, 0.42),
            "counts": {
                "car": (1, 5),
                "truck": (0, 2),
                "bus": (0, 2),
                "person": (0, 4),
                "rider": (0, 2),
                "pole": (1, 4),
                "tree": (0, 3),
            },
            "saturation": 0.6,
            "texture": 0.08,
            "blur": 0.6,
            "noise": 9.0,
            "gain": (1.0, 0.8, 0.95),
            "brightness": 0.55,
            "contrast": 0.9,
            "vignette": 0.2,
            "haze": (0.55, (150, 120, 160)),
            "ego_vehicle": False,
        }
    raise ValueError(f"`domain` must be one of {DOMAINS}. Received: domain={domain!r}")


class _Canvas:
    """Draws each shape into the RGB image and, with the same pixels, into the train-id map."""

    def __init__(self, height, width):
        self.image = Image.new("RGB", (width, height))
        self.label = Image.new("L", (width, height), IGNORE_LABEL)
        self._image_draw = ImageDraw.Draw(self.image)
        self._label_draw = ImageDraw.Draw(self.label)

    def shape(self, kind, xy, name, color):
        """Draws a "rectangle", "polygon" or "ellipse" of class `name` (None: image detail only)."""
        getattr(self._image_draw, kind)(xy, fill=tuple(int(c) for c in color))
        if name is not None:
            label = IGNORE_LABEL if name == "ignore" else _TRAIN_ID[name]
            getattr(self._label_draw, kind)(xy, fill=label)


def _jitter(rng, color, amount=18):
    return np.clip(np.asarray(color) + rng.integers(-amount, amount + 1, size=3), 0, 255)


def _count(rng, style, name):
    low, high = style["counts"][name]
    return int(rng.integers(low, high + 1))


def _draw_scene(rng, style, height, width):
    """Draws one scene; returns (uint8 RGB [H, W, 3], uint8 train ids [H, W], horizon row)."""
    h, w = height, width
    canvas = _Canvas(h, w)
    horizon = int(round(h * rng.uniform(*style["horizon"])))
    vanish_x = w * rng.uniform(0.4, 0.6)
    road_half = w * rng.uniform(*style["road_width"])
    walk_half = road_half * rng.uniform(1.4, 1.8)

    def ground_scale(y):
        # Perspective scale of a thing standing at row y: 0 at the horizon, 1 at the bottom.
        return max(y - horizon, 0) / max(h - horizon, 1)

    # Sky and the background row of buildings, walls and trees.
    canvas.shape("rectangle", (0, 0, w, h), "sky", _jitter(rng, _BASE_COLORS["sky"], 12))
    x = -int(rng.integers(0, w // 8))
    while x < w:
        bw = int(rng.integers(w // 12, w // 4))
        if rng.random() < 0.15:
            x += bw // 2  # a gap shows the sky
            continue
        top = int(horizon - h * rng.uniform(0.08, 0.4))
        color = _jitter(rng, _BUILDING_COLORS[rng.integers(len(_BUILDING_COLORS))], 10)
        canvas.shape("rectangle", (x, top, x + bw, horizon + 2), "building", color)
        window = np.clip(color * 0.55, 0, 255)
        step = max(h // 24, 3)
        for wy in range(top + step // 2, horizon - step, step):
            for wx in range(x + step // 2, x + bw - step, step):
                canvas.shape("rectangle", (wx, wy, wx + step // 2, wy + step // 2), None, window)
        x += bw
    for _ in range(int(rng.integers(0, 3))):
        x0 = rng.uniform(0, w)
        canvas.shape(
            "rectangle",
            (
                x0,
                horizon - h * rng.uniform(0.03, 0.08),
                x0 + w * rng.uniform(0.05, 0.2),
                horizon + 2,
            ),
            "wall",
            _jitter(rng, _BASE_COLORS["wall"]),
        )
    for _ in range(_count(rng, style, "tree")):
        x0 = rng.uniform(0, w)
        size = h * rng.uniform(0.08, 0.2)
        trunk = max(size / 8, 1)
        canvas.shape(
            "rectangle",
            (x0 - trunk, horizon - size, x0 + trunk, horizon + 2),
            "vegetation",
            (80, 60, 40),
        )
        canvas.shape(
            "ellipse",
            (x0 - size * 0.6, horizon - size * 1.6, x0 + size * 0.6, horizon - size * 0.5),
            "vegetation",
            _jitter(rng, _BASE_COLORS["vegetation"], 20),
        )

    # Ground: terrain, sidewalk and road in perspective toward the vanishing point.
    canvas.shape("rectangle", (0, horizon, w, h), "terrain", _jitter(rng, _BASE_COLORS["terrain"]))
    canvas.shape(
        "polygon",
        [
            (vanish_x - 2, horizon),
            (vanish_x + 2, horizon),
            (vanish_x + walk_half, h),
            (vanish_x - walk_half, h),
        ],
        "sidewalk",
        _jitter(rng, _BASE_COLORS["sidewalk"], 10),
    )
    canvas.shape(
        "polygon",
        [
            (vanish_x - 1, horizon),
            (vanish_x + 1, horizon),
            (vanish_x + road_half, h),
            (vanish_x - road_half, h),
        ],
        "road",
        _jitter(rng, _BASE_COLORS["road"], 8),
    )
    for t0 in np.arange(0.05, 1.0, 0.15):  # dashed centre line, part of the road
        y0, y1 = horizon + t0 * (h - horizon), horizon + (t0 + 0.07) * (h - horizon)
        half0, half1 = 1 + 2 * ground_scale(y0), 1 + 2 * ground_scale(y1)
        canvas.shape(
            "polygon",
            [
                (vanish_x - half0, y0),
                (vanish_x + half0, y0),
                (vanish_x + half1, y1),
                (vanish_x - half1, y1),
            ],
            None,
            (225, 225, 215),
        )
    if rng.random() < 0.5:  # a fence along the outer edge of one sidewalk
        side = rng.choice([-1.0, 1.0])
        y_top = horizon + (h - horizon) * 0.02
        edge_far = vanish_x + side * 4
        edge_near = vanish_x + side * walk_half * 1.2
        canvas.shape(
            "polygon",
            [
                (edge_far, y_top - 2),
                (edge_far, y_top + 1),
                (edge_near, h),
                (edge_near, h - h * 0.2),
            ],
            "fence",
            _jitter(rng, _BASE_COLORS["fence"]),
        )

    def ground_x(y, lane):
        """x of a point at row y and lateral position lane (-1 = left road edge, +1 = right)."""
        return vanish_x + lane * road_half * ground_scale(y)

    # Things standing on the ground, far to near so that near objects occlude far ones.
    things = []
    for _ in range(_count(rng, style, "pole")):
        things.append(
            ("pole", rng.uniform(horizon + 2, h), rng.choice([-1.0, 1.0]) * rng.uniform(1.1, 1.5))
        )
    for name in ("car", "truck", "bus"):
        for _ in range(_count(rng, style, name)):
            y = horizon + 3 + (h - horizon) * rng.uniform() ** 1.5  # more far than near
            things.append((name, y, rng.uniform(-0.75, 0.75)))
    for _ in range(_count(rng, style, "person")):
        things.append(
            (
                "person",
                rng.uniform(horizon + 2, h),
                rng.choice([-1.0, 1.0]) * rng.uniform(1.05, 1.5),
            )
        )
    for _ in range(_count(rng, style, "rider")):
        things.append(
            (
                "rider",
                rng.uniform(horizon + 2, h),
                rng.choice([-1.0, 1.0]) * rng.uniform(0.75, 0.95),
            )
        )
    things.sort(key=lambda thing: thing[1])
    for name, y, lane in things:
        s = ground_scale(y)
        x = ground_x(y, lane)
        if name == "pole":
            top, half = y - h * 0.9 * s - 4, max(0.6, 1.5 * s)
            canvas.shape(
                "rectangle",
                (x - half, top, x + half, y),
                "pole",
                _jitter(rng, _BASE_COLORS["pole"], 10),
            )
            size = max(2.0, 10 * s)
            if rng.random() < 0.5:
                canvas.shape(
                    "rectangle",
                    (x - size * 0.4, top, x + size * 0.4, top + size * 1.2),
                    "traffic light",
                    _BASE_COLORS["traffic light"],
                )
                lamp = ((220, 40, 30), (240, 170, 20), (40, 200, 60))[rng.integers(3)]
                canvas.shape(
                    "ellipse",
                    (x - size * 0.25, top + size * 0.1, x + size * 0.25, top + size * 0.5),
                    None,
                    lamp,
                )
            else:
                color = ((230, 200, 30), (30, 80, 200), (210, 30, 30))[rng.integers(3)]
                canvas.shape(
                    "rectangle",
                    (x - size * 0.6, top, x + size * 0.6, top + size),
                    "traffic sign",
                    color,
                )
        elif name in ("car", "truck", "bus"):
            # Sizes in units of a fixed width at the bottom row, so the camera sets the road width.
            unit = 0.45 * w * s
            half = unit * {"car": 0.3, "truck": 0.36, "bus": 0.4}[name]
            top = y - unit * {"car": 0.4, "truck": 0.7, "bus": 0.75}[name]
            color = _jitter(
                rng,
                _VEHICLE_COLORS[rng.integers(len(_VEHICLE_COLORS))]
                if name == "car"
                else _BASE_COLORS[name],
                15,
            )
            canvas.shape(
                "rectangle",
                (x - half, top + (y - top) * 0.35, x + half, y - (y - top) * 0.1),
                name,
                color,
            )
            roof = 0.3 if name == "car" else 0.02
            canvas.shape(
                "rectangle",
                (x - half * (1 - roof), top, x + half * (1 - roof), y - (y - top) * 0.5),
                name,
                color,
            )
            glass = (60, 80, 100)
            canvas.shape(
                "rectangle",
                (
                    x - half * (0.9 - roof),
                    top + (y - top) * 0.08,
                    x + half * (0.9 - roof),
                    top + (y - top) * 0.3,
                ),
                None,
                glass,
            )
            wheel = (y - top) * 0.22
            for wx in (x - half * 0.7, x + half * 0.7):
                canvas.shape(
                    "ellipse", (wx - wheel, y - wheel * 1.6, wx + wheel, y), name, (20, 20, 20)
                )
        elif name == "person":
            tall = h * 0.55 * s + 3
            half = tall * 0.14
            clothes = _jitter(rng, _CLOTHES_COLORS[rng.integers(len(_CLOTHES_COLORS))])
            canvas.shape("rectangle", (x - half, y - tall * 0.82, x + half, y), "person", clothes)
            canvas.shape(
                "ellipse",
                (x - half * 0.8, y - tall, x + half * 0.8, y - tall * 0.78),
                "person",
                (210, 170, 140),
            )
        else:  # a rider on a bicycle or a motorcycle
            vehicle = "bicycle" if rng.random() < 0.6 else "motorcycle"
            tall = h * 0.55 * s + 3
            half = tall * 0.35
            wheel = tall * 0.2
            for wx in (x - half * 0.7, x + half * 0.7):
                canvas.shape(
                    "ellipse",
                    (wx - wheel, y - 2 * wheel, wx + wheel, y),
                    vehicle,
                    _BASE_COLORS[vehicle],
                )
            canvas.shape(
                "rectangle",
                (x - half * 0.7, y - wheel * 1.4, x + half * 0.7, y - wheel * 0.8),
                vehicle,
                _BASE_COLORS[vehicle],
            )
            canvas.shape(
                "rectangle",
                (x - half * 0.25, y - tall * 0.85, x + half * 0.25, y - wheel),
                "rider",
                _jitter(rng, _BASE_COLORS["rider"], 30),
            )
            canvas.shape(
                "ellipse",
                (x - half * 0.2, y - tall, x + half * 0.2, y - tall * 0.8),
                "rider",
                (210, 170, 140),
            )

    if style["ego_vehicle"]:
        canvas.shape(
            "ellipse", (-0.2 * w, h - 0.1 * h, 1.2 * w, h + 0.15 * h), "ignore", (35, 35, 40)
        )
    return np.asarray(canvas.image), np.asarray(canvas.label), horizon


def render(rng, image, horizon, style):
    """Applies a camera look to a drawn image; returns uint8 RGB.

    In order: multiplicative texture, Gaussian blur, saturation, colour cast and brightness,
    contrast, distance haze below `horizon`, vignette, sensor noise.

    Args:
        rng: the `np.random.Generator` of the texture and the noise.
        image: uint8 or float RGB `[H, W, 3]` in [0, 255].
        horizon: the row above which the haze is at full strength.
        style: a dict with the keys of `domain_style`'s look: `texture`, `blur`, `saturation`,
            `gain`, `brightness`, `contrast`, `haze`, `vignette`, `noise`.
    """
    h, w, _ = image.shape
    x = image.astype(np.float32)
    if style["texture"] > 0:
        # Low-frequency shading (surfaces, light) and fine grain (materials), both multiplicative.
        coarse = ndimage.zoom(rng.standard_normal((h // 8 + 1, w // 8 + 1)), 8, order=1)[:h, :w]
        fine = rng.standard_normal((h, w))
        x *= (1.0 + style["texture"] * (coarse + 0.5 * fine))[..., None]
    if style["blur"] > 0:
        x = ndimage.gaussian_filter(x, sigma=(style["blur"], style["blur"], 0))
    grey = x.mean(axis=-1, keepdims=True)
    x = grey + style["saturation"] * (x - grey)
    x = x * np.asarray(style["gain"], np.float32) * style["brightness"]
    x = x.mean() + style["contrast"] * (x - x.mean())
    if style["haze"] is not None:
        strength, color = style["haze"]
        rows = np.arange(h, dtype=np.float32)
        far = np.clip(
            1.0 - (rows - horizon) / max(h - horizon, 1), 0.0, 1.0
        )  # 1 at and above the horizon
        alpha = (strength * far**2)[:, None, None]
        x = (1 - alpha) * x + alpha * np.asarray(color, np.float32)
    if style["vignette"] > 0:
        yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
        x *= (1.0 - style["vignette"] * (yy**2 + xx**2) / 2.0)[..., None]
    if style["noise"] > 0:
        x += style["noise"] * rng.standard_normal(x.shape)
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def draw_example(domain, seed, index, image_size=(128, 256), shift=("full",)):
    """Draws one demo example in memory.

    Args:
        domain: one of `"source"`, `"target"`, `"unseen"`.
        seed: integer seed of the whole demo; with `domain` and `index` it fixes the example.
        index: integer index of the example within the domain.
        image_size: `(height, width)` of the image.
        shift: the shift factors in effect (`shift_factors`). Defaults to every factor.

    Returns:
        `(image, label)`: uint8 RGB `[H, W, 3]` and uint8 train ids `[H, W]` (255 = ignore).
    """
    style = domain_style(domain, shift)
    height, width = check_image_size(image_size)
    rng = np.random.default_rng([int(seed), DOMAINS.index(domain), int(index)])
    drawn, label, horizon = _draw_scene(rng, style, height, width)
    return render(rng, drawn, horizon, style), label


def check_image_size(image_size):
    """Returns `image_size` as `(height, width)` ints; raises a ValueError naming it unless both
    are at least 16."""
    if len(image_size) != 2 or min(image_size) < 16:
        raise ValueError(
            "`image_size` must be (height, width), both at least 16. "
            f"Received: image_size={image_size!r}"
        )
    return int(image_size[0]), int(image_size[1])


def _label_ids():
    """train id -> Cityscapes label id (the inverse of the Cityscapes lookup table); 255 -> 0."""
    table = lookup_table("cityscapes")
    inverse = np.zeros((256,), dtype=np.uint8)
    for raw in range(255, -1, -1):  # the smallest raw id wins where several map to one train id
        if table[raw] != IGNORE_LABEL:
            inverse[table[raw]] = raw
    inverse[IGNORE_LABEL] = 0  # "unlabeled"
    return inverse


def _label_palette():
    """The 768-entry PNG palette of GTA5-style label files: label id -> Cityscapes colour."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    table = lookup_table("cityscapes")
    mapped = table != IGNORE_LABEL
    palette[mapped] = PALETTE[table[mapped]]
    return palette.reshape(-1).tolist()


def _save_png(array, path, palette=None):
    """Writes uint8 RGB `[H, W, 3]` or one channel `[H, W]`; with `palette`, a palette PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette is None:
        image = Image.fromarray(np.ascontiguousarray(array))
    else:
        # Built from raw bytes so that the pixel values stay the palette indices.
        image = Image.frombytes("P", (array.shape[1], array.shape[0]), array.tobytes())
        image.putpalette(palette)
    image.save(path, format="PNG")


def generate(
    root,
    *,
    seed=0,
    image_size=(128, 256),
    num_source=300,
    num_target_train=200,
    num_target_val=100,
    num_unseen_train=20,
    num_unseen_val=100,
    shift=("full",),
):
    """Writes the three demo domains under `root` (layouts in the module docstring).

    The files depend only on the arguments: the same seed writes identical bytes. Also writes
    `root/class_frequencies.json` (`class_frequencies`: each domain's pixel frequency per class
    over all of its frames) and `root/shift.json` (the shift's factors).

    Args:
        root: output folder (created if needed); gets `source/`, `target/` and `unseen/`.
        seed: integer seed.
        image_size: `(height, width)` of every image.
        num_source: number of source frames (GTA5 layout; the builder splits them 3:1 train/val).
        num_target_train: number of target training frames.
        num_target_val: number of target validation frames.
        num_unseen_train: number of unseen-domain training frames (written so that the Cityscapes
            builder finds both splits; uada never trains on them).
        num_unseen_val: number of unseen-domain validation frames.
        shift: the shift factors between the source and the other domains (`shift_factors`).
            Defaults to every factor.

    Returns:
        A dict `{"source": path, "target": path, "unseen": path}` of the three domain folders.
    """
    for name, value in (
        ("num_source", num_source),
        ("num_target_train", num_target_train),
        ("num_target_val", num_target_val),
        ("num_unseen_train", num_unseen_train),
        ("num_unseen_val", num_unseen_val),
    ):
        if int(value) != value or value < 0:
            raise ValueError(f"`{name}` must be a non-negative integer. Received: {name}={value!r}")
    image_size = check_image_size(image_size)
    factors = shift_factors(shift)
    root = pathlib.Path(root)
    label_ids = _label_ids()
    palette = _label_palette()
    pixels = {domain: np.zeros((256,), np.int64) for domain in DOMAINS}

    source = root / "source"
    for i in range(num_source):
        image, label = draw_example("source", seed, i, image_size, factors)
        pixels["source"] += np.bincount(label.reshape(-1), minlength=256)
        _save_png(image, source / "images" / f"{i + 1:05d}.png")
        _save_png(label_ids[label], source / "labels" / f"{i + 1:05d}.png", palette)

    index = 0  # one running index per domain, so train and val frames differ
    for domain, cities, counts in (
        ("target", TARGET_CITIES, {"train": num_target_train, "val": num_target_val}),
        ("unseen", UNSEEN_CITIES, {"train": num_unseen_train, "val": num_unseen_val}),
    ):
        for split in ("train", "val"):
            for i in range(counts[split]):
                city = cities[split][i % len(cities[split])]
                stem = f"{city}_{i:06d}_000019"
                image, label = draw_example(domain, seed, index, image_size, factors)
                pixels[domain] += np.bincount(label.reshape(-1), minlength=256)
                index += 1
                folder = root / domain
                _save_png(image, folder / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
                _save_png(
                    label_ids[label],
                    folder / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png",
                )
        index = 0
    frequencies = {domain: _frequencies(pixels[domain]) for domain in DOMAINS}
    (root / CLASS_FREQUENCIES_FILE).write_text(json.dumps(frequencies, indent=2) + "\n")
    (root / "shift.json").write_text(json.dumps({"shift": list(factors)}) + "\n")
    return {domain: root / domain for domain in DOMAINS}


CLASS_FREQUENCIES_FILE = "class_frequencies.json"


def _frequencies(counts):
    """Pixel counts per train id (255 = ignore) -> `{class name: fraction, "ignore": fraction}`."""
    total = max(int(counts.sum()), 1)
    result = {name: counts[i] / total for i, name in enumerate(CLASS_NAMES)}
    result["ignore"] = counts[IGNORE_LABEL] / total
    return {name: float(value) for name, value in result.items()}


def class_frequencies(root):
    """Each domain's pixel frequency per class, as `generate` measured and wrote it.

    Args:
        root: a folder written by `generate`.

    Returns:
        `{domain: {class name: fraction of the domain's pixels, ..., "ignore": fraction}}`.

    Raises:
        FileNotFoundError: `root` holds no `class_frequencies.json` (not written by `generate`).
    """
    path = pathlib.Path(root) / CLASS_FREQUENCIES_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {root} was not written by `uada.data.demo.generate`."
        )
    return json.loads(path.read_text())


def format_class_frequencies(frequencies):
    """A Markdown table of `class_frequencies`' result: one row per class, % of pixels."""
    domains = list(frequencies)
    lines = [
        "| class | " + " | ".join(f"{d} (%)" for d in domains) + " |",
        "|---|" + "---:|" * len(domains),
    ]
    for name in (*CLASS_NAMES, "ignore"):
        values = " | ".join(f"{100 * frequencies[d][name]:.2f}" for d in domains)
        lines.append(f"| {name} | {values} |")
    return "\n".join(lines) + "\n"
