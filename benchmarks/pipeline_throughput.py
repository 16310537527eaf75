"""Images per second delivered by the training input pipeline, with and without augmentation.

Two inputs: the demo domains at 128 x 256 (drawn in memory with
`uada.data.demo_generator.draw_example`) and synthetic in-memory data at the paper's 384 x 768.
Each row reads `--steps` training elements of `2 source + 2 target` images after `--warmup`
elements (the first ones include tracing and filling the buffers) and counts images of both
domains.

Run: `python benchmarks/pipeline_throughput.py [--steps=50] [--warmup=5]`.
"""

import argparse
import os
import time

import numpy as np
import tensorflow as tf

from uada.data import demo_generator, pipeline


def _demo_dataset(domain, count, image_size):
    examples = [demo_generator.draw_example(domain, 0, i, image_size) for i in range(count)]
    images = np.stack([image for image, _ in examples])
    labels = np.stack([label for _, label in examples])
    return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})


def _synthetic_dataset(count, image_size, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, *image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, 19, (count, *image_size), dtype=np.uint8)
    return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})


def _images_per_second(source, target, augment, steps, warmup):
    dataset = pipeline.train_dataset(source, target, seed=0, augment=augment, shuffle_buffer=32)
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        (images, _), target_images = next(iterator)
    elapsed = time.perf_counter() - start
    return steps * (images.shape[0] + target_images.shape[0]) / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    inputs = {
        "demo 128x256": lambda: (
            _demo_dataset("source", 32, (128, 256)),
            _demo_dataset("target", 32, (128, 256)),
        ),
        "synthetic 384x768": lambda: (
            _synthetic_dataset(32, (384, 768), 0),
            _synthetic_dataset(32, (384, 768), 1),
        ),
    }
    print(f"CPU cores: {os.cpu_count()}")
    print(f"{'input':<20} {'augment':<8} {'images/s':>10}")
    for name, make in inputs.items():
        source, target = make()
        for augment in (False, True):
            rate = _images_per_second(source, target, augment, args.steps, args.warmup)
            print(f"{name:<20} {str(augment):<8} {rate:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
