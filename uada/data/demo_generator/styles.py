"""The demo domains' styles: each domain's style parameters, the shift factors that switch them,
and the camera look (`render`) they give a drawn scene (the package docstring's tables)."""

import numpy as np
from scipy import ndimage

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
