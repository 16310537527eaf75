"""Writes the procedural demo domains (`uada.data.demo_generator`) in the GTA5 and Cityscapes
layouts.

    python -m uada.demo --output=DIR [--seed=0] [--height=128] [--width=256] [--shift=full]

Prints one line per domain, `<domain>: <folder>`, then each domain's pixel frequency per class
(also written to `DIR/class_frequencies.json`). `--shift` selects the shift factors between the
source and the other domains (`uada.data.demo_generator`: e.g. `appearance`, `layout`,
`color,camera`). Training on the demo domains (`--source=demo_source`) generates them by itself;
this command is for looking at them, or for preparing them with the real datasets' TFDS builders
by hand.
"""

# ruff: noqa: E402 (the imports below come after the console has started)
from uada import console

if __name__ == "__main__":
    console.start()  # before anything imports TensorFlow

from absl import app, flags

from uada import flags as uada_flags
from uada.data import demo_generator


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    fv = flags.FLAGS
    paths = demo_generator.generate(
        fv.output, seed=fv.seed, image_size=(fv.height, fv.width), shift=tuple(fv.shift)
    )
    for domain, path in paths.items():
        print(f"{domain}: {path}")
    print(f"\nShift: {demo_generator.shift_name(fv.shift)}. Pixel frequency per class:\n")
    print(demo_generator.format_class_frequencies(demo_generator.class_frequencies(fv.output)))


if __name__ == "__main__":
    uada_flags.define_demo_flags()
    flags.adopt_module_key_flags(uada_flags)  # --help lists them
    app.run(main)
