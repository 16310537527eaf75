"""Times the UADA training step against the multi-domain step, and its FLOP/s against matmul's.

Usage:
    python benchmarks/train_step.py [--backbone resnet50] [--image_size 384x768] [--repeats 5]
        [--modes multi_domain,uada,source_only,minent,advent,adaptsegnet,self_training]

`--modes` (default `multi_domain,uada`) times any modes, the other methods of `uada.methods`
included; the ratio column is relative to the first. `source_only` takes the 2 source images
only; every other mode the 2 + 2 batch.

Both models get the same 2 source + 2 target batch and both push all four images through R
forward and backward; UADA adds only D (a per-position MLP on Z, run twice: the D step and the
confusion loss). The original code ran R forward a second time for the D step (about 1.33x).
The models' compiled train functions (`jit_compile="auto"`: no XLA on CPU) are called in turn
within each repeat (round robin) and the median time is reported, so load changes on a shared
machine affect both alike.

FLOPs are counted from the traced forward graphs (2 * multiply-adds of every Conv2D, transposed
conv and MatMul); a training step is counted as 3x its forward FLOPs (backward = 2x forward),
the usual convention. The reference is the measured float32 matrix-multiply FLOP/s of this
machine (`tf.matmul` of 2048x2048 matrices).
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from uada.methods import METHODS, build_method_model  # noqa: E402
from uada.methods.method_model import MethodModel  # noqa: E402
from uada.models import build_uada_model  # noqa: E402


def _synthetic_batch(image_size, num_source=2, num_target=2):
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 255, (num_source, *image_size, 3)).astype("float32")
    target = rng.uniform(0, 255, (num_target, *image_size, 3)).astype("float32")
    labels = rng.integers(0, 19, (num_source, *image_size)).astype("int32")
    return (source, labels), target


def _forward_flops(fn, *specs):
    """FLOPs of the convolutions and matmuls in the graph of `fn` traced on `specs`."""
    graph = tf.function(fn).get_concrete_function(*specs).graph
    flops = 0
    for op in graph.get_operations():
        if op.type == "Conv2D":  # output [N, h, w, cout], filter [kh, kw, cin, cout]
            out = op.outputs[0].shape
            kh, kw, cin, _ = op.inputs[1].shape
            flops += 2 * out.num_elements() * kh * kw * cin
        elif op.type == "Conv2DBackpropInput":  # transposed conv; its input is `out_backprop`
            kh, kw, cout, _ = op.inputs[1].shape  # filter [kh, kw, cout, cin]
            flops += 2 * op.inputs[2].shape.num_elements() * kh * kw * cout
        elif op.type in ("MatMul", "BatchMatMulV2"):
            a, b = op.inputs[0].shape, op.inputs[1].shape
            flops += 2 * a.num_elements() * b[-1]
    return flops


def step_flops(model, batch):
    """Training-step FLOPs of a model on `batch`: 3x the forward FLOPs of its trained parts, 1x
    those of a method's teacher (inference only)."""
    (source, _), target = batch if isinstance(batch[0], tuple) else (batch, ())
    num_images = len(source) + len(target)
    images = tf.TensorSpec((num_images, *source.shape[1:]), tf.float32)
    z_shape = model.representation.compute_output_shape(images.shape)
    forward = _forward_flops(lambda x: model.representation(x, training=True), images)
    # UADA's S sees the source rows; a method's S all rows.
    rows = num_images if isinstance(model, MethodModel) else len(source)
    head_z = tf.TensorSpec((rows, *z_shape[1:]), tf.float32)
    forward += _forward_flops(lambda z: model.segmentation_head(z, training=True), head_z)
    if model.domain_classifier is not None:  # the D step and the confusion loss
        all_z = tf.TensorSpec((num_images, *z_shape[1:]), tf.float32)
        forward += 2 * _forward_flops(lambda z: model.domain_classifier(z), all_z)
    inference = 0
    if getattr(model, "discriminator", None) is not None:  # D on the target maps, then on all
        maps = (*source.shape[1:3], model.num_classes)
        for count in (len(target), num_images):
            spec = tf.TensorSpec((count, *maps), tf.float32)
            forward += _forward_flops(lambda m: model.discriminator(m), spec)
    if getattr(model, "teacher", None) is not None:  # pseudo-labels of the target images
        spec = tf.TensorSpec((len(target), *source.shape[1:]), tf.float32)
        inference += _forward_flops(lambda x: model.teacher(x, training=False), spec)
    return 3 * forward + inference


def matmul_flops_per_second(size=2048, repeats=20, dtype=tf.float32):
    """Measured FLOP/s of a chain of `size` x `size` matrix multiplications in `dtype`."""
    a = tf.cast(tf.random.normal((size, size)), dtype)
    b = tf.cast(tf.random.normal((size, size)), dtype)

    @tf.function
    def chain():
        c = a
        for _ in range(4):
            c = tf.matmul(c, b) * 1e-3
        return c

    chain().numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        chain().numpy()
        times.append(time.perf_counter() - start)
    return 4 * 2 * size**3 / statistics.median(times)


def compiled_train_step(mode, backbone, image_size, batch, *, jit_compile="auto"):
    """A compiled, warmed-up train function of the model of `mode` on `batch` (its source part
    alone for `"source_only"`): returns `(step, flops)`, `step()` running one training step and
    waiting for it."""
    build = build_method_model if mode in METHODS else build_uada_model
    model = build(mode, backbone, "dan", image_size=image_size)
    if mode == "source_only":
        batch = batch[0]
    model.compile(jit_compile=jit_compile)
    model.make_train_function()
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())

    def step():
        model.train_function(iterator)["seg_loss"].numpy()

    step()  # trace and warm up
    return step, step_flops(model, batch)


def time_round_robin(steps, repeats):
    """Median seconds of each of `steps` (a dict of functions), called in turn each repeat."""
    times = {key: [] for key in steps}
    for _ in range(repeats):
        for key, step in steps.items():
            start = time.perf_counter()
            step()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--image_size", default="384x768")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--modes", default="multi_domain,uada")
    args = parser.parse_args()
    image_size = tuple(int(s) for s in args.image_size.split("x"))
    batch = _synthetic_batch(image_size)

    steps, flops = {}, {}
    modes = args.modes.split(",")
    for mode in modes:
        steps[mode], flops[mode] = compiled_train_step(mode, args.backbone, image_size, batch)
    times = time_round_robin(steps, args.repeats)
    peak = matmul_flops_per_second()

    print(f"backbone={args.backbone} image_size={args.image_size} batch=2+2 "
          f"repeats={args.repeats} matmul={peak / 1e9:.1f} GFLOP/s")  # fmt: skip
    print(f"| mode | step s (median) | ratio to {modes[0]} | GFLOP per step | GFLOP/s | "
          "fraction of matmul FLOP/s |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    base = times[modes[0]]
    for mode in steps:
        seconds = times[mode]
        rate = flops[mode] / seconds
        print(f"| {mode} | {seconds:.3f} | {seconds / base:.3f} | {flops[mode] / 1e9:.1f} | "
              f"{rate / 1e9:.1f} | {rate / peak:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
