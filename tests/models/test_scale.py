"""Speed and scale: multi-worker and mirrored training, mixed precision, XLA, the benchmark.

The distributed tests check the defining property of `uada.runs.distribute`: a step over R replicas,
each with a source-first batch `[b source ; b target]`, equals the single-device step on
`[all R * b source ; all R * b target]` (synchronized DAN statistics over all source samples).
"""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from uada.models import build_uada_model
from uada.runs import distribute, precision

SIZE = (32, 64)
REPO = pathlib.Path(__file__).resolve().parents[2]
WORKER = pathlib.Path(__file__).with_name("scale_worker.py")
# The options of tests/models/scale_worker.py: no instance noise (its seed differs per replica).
OPTIONS = {"steps_per_epoch": 1, "ramp_epochs": 0, "noise_sigma": 0.0, "lambda_conf": 0.5}


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts and ends with Keras' default float32 policy."""
    precision.set_precision("none")
    yield
    precision.set_precision("none")


def _model(**kwargs):
    return build_uada_model("uada", "resnet_tiny", "dan", image_size=SIZE, **OPTIONS, **kwargs)


def _examples(count, seed=0):
    """uint8 source images, labels (a band of 255) and target images, as prepared datasets hold."""
    rng = np.random.default_rng(seed)
    source = rng.integers(0, 256, (count, *SIZE, 3), dtype=np.uint8)
    target = rng.integers(0, 256, (count, *SIZE, 3), dtype=np.uint8)
    labels = rng.integers(0, 19, (count, *SIZE), dtype=np.uint8)
    labels[:, :4] = 255
    labels[0, 4:12] = 255  # unequal valid-pixel counts per replica
    return source, labels, target


def _global_batch(source, labels, target):
    """The single-device batch `((source, labels), target)` the replicas' batches add up to."""
    return (source.astype("float32"), labels.astype("int32")), target.astype("float32")


def _fit(model, batch, steps=1):
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    return model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0).history


def _datasets(source, labels, target):
    return (
        tf.data.Dataset.from_tensor_slices({"image": source, "label": labels}),
        tf.data.Dataset.from_tensor_slices({"image": target}),
    )


def _assert_same_training(reference, history, reference_history, variables, rtol=1e-4):
    for key in ("seg_loss", "domain_loss", "confusion_loss", "loss"):
        np.testing.assert_allclose(history[key], reference_history[key], rtol=1e-5, err_msg=key)
    assert len(variables) == len(reference.variables)
    for v, value in zip(reference.variables, variables, strict=True):
        np.testing.assert_allclose(value, v.numpy(), rtol=rtol, atol=1e-6, err_msg=v.path)


# ---------------------------------------------------------------------------------------------
# Distribution


def test_two_worker_multi_worker_mirrored_matches_a_single_process(tmp_path, free_ports):
    # Two processes, one CPU replica each, each reading its shard: [1 source ; 1 target] per
    # replica. The reference is one device on [both sources ; both targets]. One step: from the
    # second on, a rounding-level difference can move a position across the confusion loss's
    # clip at 2, whose gradient is discontinuous there (seen at 0.5% of the updates).
    steps = 1
    source, labels, target = _examples(2)
    reference = _model()
    reference.compile()
    inputs = tmp_path / "inputs.npz"
    weights = reference.get_weights()
    np.savez(
        inputs,
        image_size=np.asarray(SIZE),
        steps=np.asarray(steps),
        num_weights=np.asarray(len(weights)),
        source_images=source,
        source_labels=labels,
        target_images=target,
        **{f"weight_{i}": w for i, w in enumerate(weights)},
    )
    workers = [f"localhost:{port}" for port in free_ports(2)]
    processes, outputs = [], []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(tf_config),
            "CUDA_VISIBLE_DEVICES": "",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONPATH": str(REPO),  # a script: this checkout's uada, not an installed one
        }
        outputs.append(tmp_path / f"worker_{index}.npz")
        processes.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), str(inputs), str(outputs[-1])],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        reference_history = _fit(reference, _global_batch(source, labels, target), steps)
        results = [p.communicate(timeout=240) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for index, (p, (_, stderr)) in enumerate(zip(processes, results, strict=True)):
        assert p.returncode == 0, f"worker {index} failed:\n{stderr[-6000:]}"
    for output in outputs:
        result = np.load(output)
        assert int(result["replicas"]) == 2
        history = {k[4:]: result[k] for k in result.files if k.startswith("log_")}
        variables = [result[f"variable_{i}"] for i in range(len(reference.variables))]
        _assert_same_training(reference, history, reference_history, variables)


def test_mirrored_fit_on_the_distributed_dataset_matches_a_single_device_step(mirrored_strategy):
    source, labels, target = _examples(2)
    made = distribute.get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    assert isinstance(made, tf.distribute.MirroredStrategy) and made.num_replicas_in_sync == 2
    # Run on the session's shared strategy (see tests/conftest.py: one strategy per process).
    strategy = mirrored_strategy
    data = distribute.distributed_train_dataset(
        strategy, *_datasets(source, labels, target), batch_size=1, augment=False, shuffle_buffer=1
    )
    # Each replica's element is source first, one example per replica, both examples per step.
    (replica_source, replica_labels), replica_target = next(iter(data))
    seen = []
    for images, lbls, tgt in zip(
        *(strategy.experimental_local_results(t) for t in (replica_source, replica_labels,
                                                             replica_target)),
        strict=True,
    ):  # fmt: skip
        assert images.shape == (1, *SIZE, 3) and tgt.shape == (1, *SIZE, 3)
        index = int(np.argmax([np.array_equal(images[0], s) for s in source]))
        np.testing.assert_array_equal(lbls[0], labels[index])
        np.testing.assert_array_equal(tgt[0], target[index])
        seen.append(index)
    assert sorted(seen) == [0, 1]

    reference = _model()
    reference.compile()
    with strategy.scope():
        distributed = _model()
        distributed.compile()
    distributed.set_weights(reference.get_weights())
    history = distributed.fit(data, steps_per_epoch=1, epochs=1, verbose=0).history
    reference_history = _fit(reference, _global_batch(source, labels, target))
    _assert_same_training(reference, history, reference_history, distributed.get_weights())


def test_get_strategy_rejects_unknown_names_and_bad_tf_config(monkeypatch):
    assert distribute.get_strategy("default").num_replicas_in_sync == 1
    with pytest.raises(ValueError, match="strategy='tpu'"):
        distribute.get_strategy("tpu")
    with pytest.raises(ValueError, match="devices="):
        distribute.get_strategy("default", devices=["/cpu:0"])
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="`TF_CONFIG` is not set"):
        distribute.get_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{cluster")
    with pytest.raises(ValueError, match="not valid JSON"):
        distribute.get_strategy("multi_worker")
    bad_index = {"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 1}}
    with pytest.raises(ValueError, match='"index": 1'):
        distribute.tf_config_cluster(json.dumps(bad_index))
    good = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}
    assert distribute.tf_config_cluster(json.dumps(good)) == (["a:1", "b:2"], 1)


# ---------------------------------------------------------------------------------------------
# Precision and XLA


def _train_from(initial, batch, *, steps=2, **compile_kwargs):
    """A model with float32 `initial` weights, trained `steps` steps under the current policy."""
    model = _model()
    model.set_weights(initial)
    model.compile(**compile_kwargs)
    history = _fit(model, batch, steps)
    return model, history


@pytest.mark.parametrize(
    "name, jit_compile, loss_rtol, update_rtol",
    [
        # Observed relative update errors: 1e-5 (XLA float32), 0.37 (bfloat16, 8-bit mantissa:
        # a deep net's low-precision gradient is that far from float32's in direction), 0.13
        # (float16, 11 bits). A missed unscaling would be off by 2**15, a lost update by 1.
        ("none", True, 1e-4, 1e-4),  # XLA float32: same maths, another op order
        ("mixed_bfloat16", False, 2e-2, 0.5),
        ("mixed_float16", False, 5e-3, 0.25),
        ("mixed_bfloat16", True, 2e-2, 0.5),
    ],
)
def test_low_precision_and_xla_steps_stay_close_to_float32(name, jit_compile, loss_rtol,
                                                           update_rtol):  # fmt: skip
    (source, labels), target = _global_batch(*_examples(2))
    batch = ((source, labels.astype("int32")), target)
    reference = _model()
    initial = reference.get_weights()
    reference.compile()
    reference_history = _fit(reference, batch, 1)

    precision.set_precision(name)
    model, history = _train_from(initial, batch, steps=1, jit_compile=jit_compile)
    assert model.representation.compute_dtype == (
        "float32" if name == "none" else name.removeprefix("mixed_")
    )
    assert all(v.dtype == "float32" for v in model.trainable_variables)
    assert model.segmenter.output.dtype == "float32"
    assert history["skipped_steps"] == [0.0]
    for key in ("seg_loss", "domain_loss", "confusion_loss", "loss"):
        np.testing.assert_allclose(history[key], reference_history[key], rtol=loss_rtol)
    # The weight updates of one step (not the weights, which barely move) are close. (From the
    # second step on, the confusion loss's clip makes the comparison chaotic; see above.)
    start = dict(zip([v.path for v in reference.weights], initial, strict=True))
    updates, reference_updates = [], []
    for v, ref in zip(model.trainable_variables, reference.trainable_variables, strict=True):
        assert v.path == ref.path
        updates.append(v.numpy().ravel() - start[v.path].ravel())
        reference_updates.append(ref.numpy().ravel() - start[v.path].ravel())
    updates, reference_updates = np.concatenate(updates), np.concatenate(reference_updates)
    assert np.all(np.isfinite(updates))
    error = np.linalg.norm(updates - reference_updates) / np.linalg.norm(reference_updates)
    assert error < update_rtol, error
    if name == "mixed_float16":
        assert isinstance(model.seg_optimizer, keras.optimizers.LossScaleOptimizer)
        assert isinstance(model.domain_optimizer, keras.optimizers.LossScaleOptimizer)
        assert history["loss_scale"] == [2.0**15]


def test_float16_overflow_halves_the_scale_and_skips_without_counting_toward_the_limit():
    # A loss scale of 2**40 overflows float16 at once: the step is skipped, nothing moves, the
    # scale halves, and the skip does not count toward max_consecutive_skips=1.
    precision.set_precision("mixed_float16")
    model = _model(max_consecutive_skips=1)
    sgd = [keras.optimizers.SGD(0.01, momentum=0.9) for _ in range(2)]
    model.compile(
        seg_optimizer=keras.optimizers.LossScaleOptimizer(sgd[0], initial_scale=2.0**40),
        domain_optimizer=keras.optimizers.LossScaleOptimizer(sgd[1], initial_scale=2.0**40),
    )
    parts = (model.representation, model.segmentation_head, model.domain_classifier)
    weights = [w for part in parts for w in part.weights]  # moving statistics included
    before = [w.numpy() for w in weights]
    history = _fit(model, _global_batch(*_examples(2)), steps=1)
    assert history["skipped_steps"] == [1.0]
    assert int(model._consecutive_skips.numpy()) == 0
    scales = [float(o.dynamic_scale.numpy()) for o in (model.seg_optimizer, model.domain_optimizer)]
    assert scales[0] == 2.0**39 or scales[1] == 2.0**39
    assert all(s in (2.0**39, 2.0**40) for s in scales)
    for b, w in zip(before, weights, strict=True):
        np.testing.assert_array_equal(w.numpy(), b, err_msg=w.path)


def test_set_precision_names_the_argument():
    assert precision.set_precision("mixed_bfloat16").name == "mixed_bfloat16"
    with pytest.raises(ValueError, match="precision='float16'"):
        precision.set_precision("float16")


# ---------------------------------------------------------------------------------------------
# Benchmark


def test_benchmark_quick_mode_prints_every_row():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PYTHONPATH"] = str(REPO)  # a script: this checkout's uada, not an installed one
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--quick"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    table = result.stdout
    for row in (
        "normalization dan / keras_bn",
        "uada / multi_domain step time",
        "pipeline images/s",
        "train step images/s",
        "CPU FLOP utilisation",
        "XLA on / off step time",
        "peak training memory",
        "GPU",
    ):
        assert f"| {row}" in table, f"no row {row!r} in:\n{table}"
