"""One demo scene drawn in painter's order, far to near, with its exact label map.

`draw_scene` draws the scene of a domain's style: `_Scene` draws the camera (horizon, vanishing
point, road width), then the background (sky, buildings, walls, trees), the ground (terrain,
sidewalk, road, lane marks, a fence), the things standing on it sorted far to near (poles with a
sign or a light, vehicles, persons, riders), and the ego vehicle. Every shape is drawn with the
same pixels into the image and the label map (`_Canvas`). `draw_example` adds the camera look.
"""

import numpy as np
from PIL import Image, ImageDraw

from uada.data.demo_generator.styles import DOMAINS, domain_style, render
from uada.data.labels import CLASS_NAMES, IGNORE_LABEL

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


class _Scene:
    """A scene's canvas and camera, drawn from the domain's style: the horizon row, the vanishing
    point, and the half-widths of the road and the sidewalks at the bottom row."""

    def __init__(self, rng, style, height, width):
        self.h, self.w = height, width
        self.canvas = _Canvas(height, width)
        self.horizon = int(round(height * rng.uniform(*style["horizon"])))
        self.vanish_x = width * rng.uniform(0.4, 0.6)
        self.road_half = width * rng.uniform(*style["road_width"])
        self.walk_half = self.road_half * rng.uniform(1.4, 1.8)

    def ground_scale(self, y):
        """Perspective scale of a thing standing at row y: 0 at the horizon, 1 at the bottom."""
        return max(y - self.horizon, 0) / max(self.h - self.horizon, 1)

    def ground_x(self, y, lane):
        """x of a point at row y and lateral position lane (-1 = left road edge, +1 = right)."""
        return self.vanish_x + lane * self.road_half * self.ground_scale(y)


def draw_scene(rng, style, height, width):
    """Draws one scene; returns (uint8 RGB [H, W, 3], uint8 train ids [H, W], horizon row)."""
    scene = _Scene(rng, style, height, width)
    _draw_background(rng, scene, style)
    _draw_ground(rng, scene)
    # Things standing on the ground, far to near so that near objects occlude far ones.
    for name, y, lane in _place_things(rng, scene, style):
        draw = _draw_vehicle if name in ("car", "truck", "bus") else _DRAW_THING[name]
        draw(rng, scene, name, scene.ground_x(y, lane), y, scene.ground_scale(y))
    if style["ego_vehicle"]:
        h, w = scene.h, scene.w
        scene.canvas.shape(
            "ellipse", (-0.2 * w, h - 0.1 * h, 1.2 * w, h + 0.15 * h), "ignore", (35, 35, 40)
        )
    return np.asarray(scene.canvas.image), np.asarray(scene.canvas.label), scene.horizon


def _draw_background(rng, scene, style):
    """The sky and the background row of buildings (with windows), walls and trees."""
    canvas, h, w, horizon = scene.canvas, scene.h, scene.w, scene.horizon
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


def _draw_ground(rng, scene):
    """Terrain, sidewalk and road (with its dashed centre line) in perspective toward the
    vanishing point, and sometimes a fence along one sidewalk."""
    canvas, h, w, horizon = scene.canvas, scene.h, scene.w, scene.horizon
    vanish_x, road_half, walk_half = scene.vanish_x, scene.road_half, scene.walk_half
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
        half0, half1 = 1 + 2 * scene.ground_scale(y0), 1 + 2 * scene.ground_scale(y1)
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


def _place_things(rng, scene, style):
    """The things standing on the ground, `[(class name, row, lane), ...]` sorted far to near."""
    h, horizon = scene.h, scene.horizon
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
    return things


def _draw_pole(rng, scene, name, x, y, s):
    """A pole standing at `(x, y)` (perspective scale `s`) carrying a traffic light or a sign."""
    canvas, h = scene.canvas, scene.h
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


def _draw_vehicle(rng, scene, name, x, y, s):
    """A car, truck or bus (`name`) standing at `(x, y)`: body, roof, windows, wheels."""
    canvas, w = scene.canvas, scene.w
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
        canvas.shape("ellipse", (wx - wheel, y - wheel * 1.6, wx + wheel, y), name, (20, 20, 20))


def _draw_person(rng, scene, name, x, y, s):
    """A pedestrian standing at `(x, y)`: clothes and head."""
    canvas, h = scene.canvas, scene.h
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


def _draw_rider(rng, scene, name, x, y, s):
    """A rider on a bicycle or a motorcycle at `(x, y)`: wheels, frame, body, head."""
    canvas, h = scene.canvas, scene.h
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


# Class name -> the function that draws a thing of it (vehicles: `_draw_vehicle`).
_DRAW_THING = {"pole": _draw_pole, "person": _draw_person, "rider": _draw_rider}


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
    drawn, label, horizon = draw_scene(rng, style, height, width)
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
