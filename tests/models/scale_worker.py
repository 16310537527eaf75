"""One worker of the two-process `MultiWorkerMirroredStrategy` test in `test_scale.py`.

Run by the test, never by pytest: `python scale_worker.py INPUTS OUTPUT` with `TF_CONFIG` set and
one CPU device. Reads the inputs the test wrote (`initial` weights and the examples of both
domains), builds the tiny UADA model under `get_strategy("multi_worker")`, loads the weights,
fits `steps` steps on `distributed_train_dataset` (this worker's shard of the examples), does the
same for one step of each listed method of `uada.methods` from its own weights, and writes every
model variable and the `fit` logs to OUTPUT (`.npz`).

The UADA model's step runs compiled, as the trainer runs it; the methods' steps run eagerly
(`run_eagerly=True`): the same step code and the same cross-replica sums, without tracing a
distributed step per model (the tracing was most of the test's time). The single-device
references they are compared with are compiled (`method_steps`).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from uada.methods import build_method_model  # noqa: E402
from uada.models import build_uada_model  # noqa: E402
from uada.runs import distribute  # noqa: E402


def main(inputs_path, output_path):
    # One thread each: the two workers share the machine with the test's own process, and a
    # worker whose threads wait for a core stalls the other at every collective.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    strategy = distribute.get_strategy("multi_worker")  # before any other TF op
    inputs = np.load(inputs_path)
    size = tuple(int(s) for s in inputs["image_size"])
    options = {
        "image_size": size,
        "steps_per_epoch": 1,
        "ramp_epochs": 0,
        "noise_sigma": 0.0,
        "lambda_conf": 0.5,
    }
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_uada_model("uada", "resnet_tiny", "dan", **options)
        model.compile()
    num_weights = int(inputs["num_weights"])
    model.set_weights([inputs[f"weight_{i}"] for i in range(num_weights)])
    source = tf.data.Dataset.from_tensor_slices(
        {"image": inputs["source_images"], "label": inputs["source_labels"]}
    )
    target = tf.data.Dataset.from_tensor_slices({"image": inputs["target_images"]})
    data = distribute.distributed_train_dataset(
        strategy, source, target, batch_size=1, augment=False, shuffle_buffer=1
    )
    history = model.fit(data, steps_per_epoch=int(inputs["steps"]), epochs=1, verbose=0).history
    arrays = _step_arrays(model, history)
    # The other adaptation methods, each from its own weights, one step on the same data.
    for mode in (str(m) for m in inputs["methods"]):
        with strategy.scope():
            method = build_method_model(mode, "resnet_tiny", "dan", image_size=size,
                                        steps_per_epoch=1)  # fmt: skip
            method.compile(run_eagerly=True)  # see the module docstring
        count = int(inputs[f"{mode}_num_weights"])
        method.set_weights([inputs[f"{mode}_weight_{i}"] for i in range(count)])
        history = method.fit(data, steps_per_epoch=1, epochs=1, verbose=0).history
        arrays.update({f"{mode}_{k}": v for k, v in _step_arrays(method, history).items()})
    arrays["replicas"] = np.asarray(strategy.num_replicas_in_sync)
    np.savez(output_path, **arrays)


def _step_arrays(model, history):
    """`variable_<i>` of every model variable and `log_<key>` of the `fit` logs."""
    arrays = {f"variable_{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model.variables)}
    arrays.update({f"log_{key}": np.asarray(value) for key, value in history.items()})
    return arrays


if __name__ == "__main__":
    main(*sys.argv[1:])
