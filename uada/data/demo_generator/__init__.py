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

The groups (`SHIFT_GROUPS`): `full` (every factor: the default), `appearance` (`color`, `texture`,
`blur`, `noise`, `exposure`, `haze`: the same scenes drawn with the same layout and class
frequencies, only the camera look differs) and `layout` (`camera`, `objects`: the look of the
source, other scene geometry and class frequencies). `none` makes every domain draw like the source
(no shift at all). `class_frequencies` measures each domain's pixel frequency per class;
`python -m uada.demo` prints it.

So the source looks like a game (flat colours, hard edges, saturated), the target like a camera
(texture, blur, warm cast, vignetting, noise, a higher horizon and more pedestrians), and the unseen
domain like a hazy dusk seen from a lower camera. The shift is sized to be clearly visible, not
tuned to favour any method.

Example:

```python
from uada.data import demo_generator

demo_generator.generate("demo_data", seed=0)
demo_generator.generate("demo_appearance", seed=0, shift=("appearance",))  # other look only
```

or from a shell: `python -m uada.demo --output=demo_data --seed=0 [--shift=appearance]`.

The package: `styles` (each domain's style parameters, the shift factors, and the camera look
`render`), `scene` (one scene and its exact label map, `draw_example`), `files` (`generate`: the
folder layouts and the class frequencies).
"""

from uada.data.demo_generator.files import (
    CLASS_FREQUENCIES_FILE,
    TARGET_CITIES,
    UNSEEN_CITIES,
    class_frequencies,
    format_class_frequencies,
    generate,
)
from uada.data.demo_generator.scene import check_image_size, draw_example
from uada.data.demo_generator.styles import (
    APPEARANCE_FACTORS,
    DOMAINS,
    FACTORS,
    LAYOUT_FACTORS,
    SHIFT_GROUPS,
    domain_style,
    render,
    shift_factors,
    shift_name,
)

__all__ = [
    "APPEARANCE_FACTORS", "CLASS_FREQUENCIES_FILE", "DOMAINS", "FACTORS", "LAYOUT_FACTORS",
    "SHIFT_GROUPS", "TARGET_CITIES", "UNSEEN_CITIES", "check_image_size", "class_frequencies",
    "domain_style", "draw_example", "format_class_frequencies", "generate", "render",
    "shift_factors", "shift_name",
]  # fmt: skip
