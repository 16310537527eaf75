"""Pretrains the demo backbone `resnet_tiny` on procedural shapes and patterns in random styles.

    python -m uada.pretrain --output=workdirs/demo_pretrained/resnet_tiny.weights.h5 \
        [--steps=1500] [--seed=0]

The demo's analogue of ImageNet pretraining (`uada.data.pattern_images`,
`uada.runs.backbone_pretraining.pretrain_resnet_tiny`): writes the weights of the plain
`resnet_tiny` base, which `python -m uada.train --backbone=resnet_tiny --weights=FILE` loads.
Prints the held-out classification accuracy (chance: 10%) and the path.
"""

# ruff: noqa: E402 (the imports below come after the console has started)
from uada import console

if __name__ == "__main__":
    console.start()  # before anything imports TensorFlow

from absl import app, flags

from uada import flags as uada_flags
from uada.runs import backbone_pretraining


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    fv = flags.FLAGS
    accuracy = backbone_pretraining.pretrain_resnet_tiny(fv.output, steps=fv.steps, seed=fv.seed)
    print(f"Held-out accuracy: {100 * accuracy:.1f}% (chance: 10.0%)")
    print(f"Weights: {fv.output}")


if __name__ == "__main__":
    uada_flags.define_pretrain_flags()
    flags.adopt_module_key_flags(uada_flags)  # --help lists them
    app.run(main)
