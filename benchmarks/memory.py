"""Computes (does not measure) the peak training memory of a `UADAModel` step.

Usage:
    python benchmarks/memory.py [--backbone resnet50] [--image_size 384x768]
        [--precision mixed_bfloat16]

The model is built (no weights are downloaded, nothing runs) and the memory is added up from its
layers' output shapes, for a step on `num_source + num_target` images:

- variables (float32 master weights), their gradients (float32) and the SGD momentum (float32);
  under mixed precision also the low-precision copy of every kernel that the backward pass keeps;
- activations kept for the backward pass: every layer's output of R (all images), of S (source
  images) and of D (all images, twice: the D step and the confusion loss) in the compute dtype,
  plus, for every batch-norm-like layer, the float32 copy of its input that uada's normalization
  kernel keeps (statistics are float32); the input images (float32); the float32 logits and their
  gradient at the image size.

It ignores the framework's workspace (cuDNN scratch, allocator fragmentation) and counts each
saved tensor once, so the real peak is higher by a margin; the figure says whether the
configuration fits, not the allocator's exact high-water mark.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from uada.models import build_uada_model  # noqa: E402
from uada.runs import precision  # noqa: E402

_NORMALIZATIONS = (keras.layers.BatchNormalization,)
_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def _leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            yield layer


def _activation_bytes(model, batch, spatial=None):
    """Bytes of the outputs (and float32 normalization inputs) of `model`'s layers for `batch`.

    `spatial` is the `(h, w)` of an input whose spatial size the model leaves open (S and D take
    any Z); layers with an open output size keep it (a transposed conv multiplies it by its
    stride).
    """
    total = 0
    for layer in _leaf_layers(model):
        shape = list(layer.output.shape[1:])
        if None in shape[:2]:
            if isinstance(layer, keras.layers.Conv2DTranspose):
                spatial = tuple(s * k for s, k in zip(spatial, layer.strides, strict=True))
            shape[:2] = spatial
        else:
            spatial = tuple(shape[:2])
        elements = batch * int(np.prod(shape))
        total += elements * _BYTES[layer.compute_dtype]
        if isinstance(layer, _NORMALIZATIONS):
            total += elements * 4  # the float32 copy of the input kept by the kernel
    return total


def training_memory(model, num_source=2, num_target=2):
    """Computed training-step memory of `model` in bytes, by part (see the module docstring).

    Returns:
        A dict with `"weights, gradients, momentum"`, `"activations"` and `"total"`.
    """
    num_images = num_source + num_target
    height, width = model.image_size
    parameters = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    low_precision = model.compute_dtype != "float32"
    state = parameters * (4 + 4 + 4 + (2 if low_precision else 0))
    activations = _activation_bytes(model.representation, num_images)
    z_size = tuple(model.representation.output.shape[1:3])
    activations += _activation_bytes(model.segmentation_head, num_source, z_size)
    if model.domain_classifier is not None:
        activations += 2 * _activation_bytes(model.domain_classifier, num_images, z_size)
    activations += num_images * height * width * 3 * 4  # input images, float32
    activations += 2 * num_source * height * width * model.num_classes * 4  # logits + gradient
    return {
        "weights, gradients, momentum": state,
        "activations": activations,
        "total": state + activations,
    }


def paper_configuration_memory(precision_name="mixed_bfloat16", backbone="resnet50",
                               image_size=(384, 768)):  # fmt: skip
    """`training_memory` of the paper's configuration: UADA, DAN, output stride 8, 2 + 2 images."""
    previous = keras.mixed_precision.dtype_policy()
    try:
        precision.set_precision(precision_name)
        model = build_uada_model("uada", backbone, "dan", 8, image_size=image_size)
        return training_memory(model)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--image_size", default="384x768")
    parser.add_argument("--precision", default="mixed_bfloat16", choices=precision.PRECISIONS)
    args = parser.parse_args()
    image_size = tuple(int(s) for s in args.image_size.split("x"))
    memory = paper_configuration_memory(args.precision, args.backbone, image_size)
    print(f"backbone={args.backbone} image_size={args.image_size} precision={args.precision} "
          "batch=2+2 output_stride=8 (computed, not measured)")  # fmt: skip
    for part, value in memory.items():
        print(f"{part}: {value / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
