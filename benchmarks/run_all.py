"""Every benchmark of uada in one table: normalization, train step, pipeline, XLA, memory, GPU.

Usage:
    python benchmarks/run_all.py            # the paper's sizes (ResNet-50 OS8, 384x768): minutes
    python benchmarks/run_all.py --quick    # tiny sizes: seconds, a smoke test of every row

Rows (all ratios are measured within this one run, so they hold on a noisy shared machine):

- normalization `<layer> / keras_bn`: forward + backward time of uada's layers over Keras
  `BatchNormalization` (`benchmarks/normalization.py`), without and with XLA;
- `uada / multi_domain step time`: the UADA step over the multi-domain step (same 2 + 2 batch;
  UADA adds D) (`benchmarks/train_step.py`);
- `pipeline images/s` (`benchmarks/pipeline_throughput.py`, synthetic images, with and without
  augmentation) against `train step images/s` (4 images per UADA step): the pipeline must be
  faster than the step;
- `CPU FLOP utilisation`: the UADA step's FLOP/s (3x its forward convolution and matmul FLOPs)
  over this machine's measured float32 matmul FLOP/s;
- `XLA on / off step time`: the UADA step compiled with `jit_compile=True` over without;
- `peak training memory`: computed from the model's layer shapes for the paper's configuration
  (2 + 2 images, 384x768, OS8, ResNet-50, bf16 compute, float32 weights, SGD momentum)
  (`benchmarks/memory.py`; computed, not measured);
- `GPU ...`, only when TensorFlow sees a GPU: images/s and MFU of the UADA step at 384x768 OS8
  for float32, mixed bfloat16 and mixed bfloat16 + XLA, and the projected wall time of the
  paper's schedule (17 epochs x 1487 G steps). MFU is the step's FLOP/s over the device's peak
  dense FLOP/s: for an H200, NVIDIA's datasheet (H200 Tensor Core GPU, SXM): 989 TFLOP/s BF16
  and 494 TFLOP/s TF32 (TensorFlow runs float32 convolutions and matmuls in TF32 on Ampere and
  later), i.e. half the "with sparsity" figures; for any other GPU, the measured matmul FLOP/s
  of that precision on the device.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling benchmark modules

import keras  # noqa: E402
import memory  # noqa: E402
import normalization  # noqa: E402
import pipeline_throughput  # noqa: E402
import tensorflow as tf  # noqa: E402
import train_step  # noqa: E402

from uada.models import schedules  # noqa: E402
from uada.runs import precision  # noqa: E402

PAPER_STEPS = 17 * schedules.STEPS_PER_EPOCH  # 17 epochs of 1487 G steps
# Peak dense FLOP/s by device name (NVIDIA H200 datasheet, SXM; half the sparsity figures).
DATASHEET_PEAK = {"H200": {"mixed_bfloat16": 989e12, "none": 494e12}}

QUICK = {
    "norm_shapes": ["4x8x16x32"],
    "norm_repeats": 2,
    "backbone": "resnet_tiny",
    "image_size": (64, 128),
    "step_repeats": 1,
    "pipeline_size": (64, 128),
    "pipeline_steps": 3,
    "matmul_size": 512,
}
FULL = {
    "norm_shapes": ["4x96x192x256", "4x48x96x2048"],
    "norm_repeats": 5,
    "backbone": "resnet50",
    "image_size": (384, 768),
    "step_repeats": 3,
    "pipeline_size": (384, 768),
    "pipeline_steps": 20,
    "matmul_size": 2048,
}


def _row(metric, value, note=""):
    print(f"| {metric} | {value} | {note} |", flush=True)


def normalization_rows(shapes, repeats):
    names = ["keras_bn", "dan", "split_batch", "instance", "none"]
    for shape_str in shapes:
        shape = tuple(int(s) for s in shape_str.split("x"))
        x = tf.random.stateless_normal(shape, seed=(1, 2)) * 2.0 + 0.5
        steps = {
            (name, jit): normalization.compiled_step(name, x, jit)
            for jit in (False, True)
            for name in names
        }
        times = normalization.time_round_robin(steps, x, repeats)
        for name in names[1:]:
            plain = times[(name, False)] / times[("keras_bn", False)]
            xla = times[(name, True)] / times[("keras_bn", True)]
            _row(f"normalization {name} / keras_bn, {shape_str}", f"{plain:.2f}",
                 f"XLA: {xla:.2f}; forward + backward")  # fmt: skip


def train_step_rows(config):
    image_size = config["image_size"]
    batch = train_step._synthetic_batch(image_size)
    backbone = config["backbone"]
    steps, flops = {}, {}
    for key, mode, jit in (
        ("multi_domain", "multi_domain", "auto"),
        ("uada", "uada", "auto"),
        ("uada_xla", "uada", True),
    ):
        steps[key], flops[key] = train_step.compiled_train_step(
            mode, backbone, image_size, batch, jit_compile=jit
        )
    times = train_step.time_round_robin(steps, config["step_repeats"])
    size = "x".join(map(str, image_size))
    where = f"{backbone} OS8 {size}, 2+2"
    _row("uada / multi_domain step time", f"{times['uada'] / times['multi_domain']:.3f}",
         f"{where}; uada {times['uada']:.3f} s")  # fmt: skip
    _row("XLA on / off step time", f"{times['uada_xla'] / times['uada']:.3f}",
         f"{where}; uada with jit_compile=True")  # fmt: skip
    step_rate = 4 / times["uada"]
    peak = train_step.matmul_flops_per_second(config["matmul_size"])
    rate = flops["uada"] / times["uada"]
    _row("CPU FLOP utilisation", f"{rate / peak:.2f}",
         f"{rate / 1e9:.1f} GFLOP/s of {flops['uada'] / 1e9:.1f} GFLOP/step over "
         f"float32 matmul {peak / 1e9:.1f} GFLOP/s")  # fmt: skip
    return step_rate


def pipeline_rows(config, step_rate):
    size = config["pipeline_size"]
    source = pipeline_throughput._synthetic_dataset(32, size, 0)
    target = pipeline_throughput._synthetic_dataset(32, size, 1)
    name = "x".join(map(str, size))
    for augment in (False, True):
        rate = pipeline_throughput._images_per_second(
            source, target, augment, config["pipeline_steps"], warmup=2
        )
        _row(f"pipeline images/s, augment={augment}", f"{rate:.1f}",
             f"synthetic {name}; {rate / step_rate:.1f}x the train step")  # fmt: skip
    _row("train step images/s", f"{step_rate:.2f}", "UADA, 2+2 images per step, CPU")


def memory_rows(config):
    size = config["image_size"]
    parts = memory.paper_configuration_memory("mixed_bfloat16", config["backbone"], size)
    total = parts["total"] / 2**30
    where = f"{config['backbone']} OS8 {'x'.join(map(str, size))}, 2+2, bf16"
    _row("peak training memory", f"{total:.2f} GiB",
         f"{where}; computed, not measured: weights+grads+momentum "
         f"{parts['weights, gradients, momentum'] / 2**30:.2f} GiB, activations "
         f"{parts['activations'] / 2**30:.2f} GiB; fits 16 GB: {total * 2**30 < 16e9}")  # fmt: skip


def gpu_rows():
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        _row("GPU", "not visible: section skipped", "")
        return
    details = tf.config.experimental.get_device_details(gpus[0])
    device = details.get("device_name", "GPU")
    peaks = next((p for key, p in DATASHEET_PEAK.items() if key in device), None)
    batch = train_step._synthetic_batch((384, 768))
    for name, policy, jit in (
        ("fp32", "none", False),
        ("bf16", "mixed_bfloat16", False),
        ("bf16+XLA", "mixed_bfloat16", True),
    ):
        precision.set_precision(policy)
        keras.utils.clear_session()
        step, flops = train_step.compiled_train_step(
            "uada", "resnet50", (384, 768), batch, jit_compile=jit
        )
        seconds = train_step.time_round_robin({name: step}, 10)[name]
        if peaks is not None:
            peak, source = peaks[policy], "datasheet"
        else:
            dtype = tf.bfloat16 if policy != "none" else tf.float32
            peak, source = train_step.matmul_flops_per_second(8192, 10, dtype), "measured matmul"
        _row(f"GPU {name} images/s", f"{4 / seconds:.1f}",
             f"{device}; MFU {flops / seconds / peak:.3f} ({source} peak "
             f"{peak / 1e12:.0f} TFLOP/s); 17 epochs: "
             f"{PAPER_STEPS * seconds / 3600:.2f} h")  # fmt: skip
    precision.set_precision("none")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: seconds")
    args = parser.parse_args()
    tf.get_logger().setLevel("ERROR")  # the layer benchmark retraces on purpose
    config = QUICK if args.quick else FULL
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, CPU cores: {os.cpu_count()}, "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}, "
          f"mode: {'quick' if args.quick else 'full'}")  # fmt: skip
    print("| metric | value | note |")
    print("|---|---|---|")
    normalization_rows(config["norm_shapes"], config["norm_repeats"])
    step_rate = train_step_rows(config)
    pipeline_rows(config, step_rate)
    memory_rows(config)
    gpu_rows()


if __name__ == "__main__":
    main()
