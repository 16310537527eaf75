"""Times forward + backward of every normalization against Keras BatchNormalization.

Usage:
    python benchmarks/normalization.py [--repeats 10] [--shapes 4x96x192x256,4x48x96x2048]

For each shape, each layer runs a training-mode forward pass and the gradients of a scalar loss
with respect to the input, gamma and beta, inside one `tf.function`, with and without XLA.
Domain-aware layers get a 2 + 2 source/target split (the paper's batch). All layers run in one
process on the same tensors, so the ratios are comparable even on a noisy machine; the table
reports the median time over `--repeats` runs and the ratio to Keras BN in the same column;
the layers are timed in turn within each repeat (round robin).
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from uada import layers  # noqa: E402


def _make(name):
    if name == "keras_bn":
        return keras.layers.BatchNormalization(momentum=0.96, epsilon=1e-5)
    return layers.get_normalization(name)


def compiled_step(name, x, jit_compile):
    """A `tf.function` running one forward + backward pass of layer `name` on `x`, warmed up."""
    layer = _make(name)
    layer.build(x.shape)
    num_source = x.shape[0] // 2 if name in ("dan", "split_batch") else None
    weights = layer.trainable_weights

    @tf.function(jit_compile=jit_compile)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = (
                layer(x, training=True, num_source=num_source)
                if num_source
                else layer(x, training=True)
            )
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, [x, *weights])

    for _ in range(2):  # trace, compile, warm up
        [g.numpy() for g in step(x)]
    return step


def time_round_robin(steps, x, repeats):
    """Median seconds per step; the steps run in turn each repeat, so that a change of the
    machine's load during the benchmark affects every layer alike."""
    times = {key: [] for key in steps}
    for _ in range(repeats):
        for key, step in steps.items():
            start = time.perf_counter()
            [g.numpy() for g in step(x)]
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--shapes", default="4x96x192x256,4x48x96x2048")
    args = parser.parse_args()
    names = ["keras_bn", "batch", "dan", "split_batch", "instance", "none"]
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, devices: "
          f"{[d.device_type for d in tf.config.list_physical_devices()]}")  # fmt: skip
    print(
        "| shape | layer | ms (no XLA) | ratio to Keras BN | ms (XLA) | ratio to Keras BN (XLA) |"
    )
    print("|---|---|---|---|---|---|")
    for shape_str in args.shapes.split(","):
        shape = tuple(int(s) for s in shape_str.split("x"))
        x = tf.random.stateless_normal(shape, seed=(1, 2)) * 2.0 + 0.5
        steps = {
            (name, jit): compiled_step(name, x, jit) for jit in (False, True) for name in names
        }
        results = time_round_robin(steps, x, args.repeats)
        for name in names:
            plain, xla = results[(name, False)], results[(name, True)]
            print(
                f"| {shape_str} | {name} | {plain * 1e3:.1f} | "
                f"{plain / results[('keras_bn', False)]:.2f} | {xla * 1e3:.1f} | "
                f"{xla / results[('keras_bn', True)]:.2f} |"
            )


if __name__ == "__main__":
    main()
