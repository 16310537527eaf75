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
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    BACKWARD_DEPTH,
    HANG_GUARD_SECONDS,
    TINY_SIZE,
    assert_same_step,
    float32_error_bound,
    global_batch,
    run_main,
    tiny_examples,
)

from uada.layers import source_first_normalization
from uada.models import build_uada_model, losses
from uada.runs import distribute, precision

SIZE = TINY_SIZE
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


def _fit(model, batch, steps=1):
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    return model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0).history


def _datasets(source, labels, target):
    return (
        tf.data.Dataset.from_tensor_slices({"image": source, "label": labels}),
        tf.data.Dataset.from_tensor_slices({"image": target}),
    )


@pytest.fixture(scope="module")
def one_step():
    """The single-device float32 step every other computation of it is compared with: the tiny
    model's initial values, its values after one step on `global_batch(*tiny_examples(2))`, and the
    step's logs."""
    precision.set_precision("none")
    keras.utils.set_random_seed(0)
    examples = tiny_examples(2)
    reference = _model()
    reference.compile()
    weights = reference.get_weights()  # what `set_weights` takes
    initial = [v.numpy() for v in reference.variables]
    history = _fit(reference, global_batch(*examples))
    return types.SimpleNamespace(
        examples=examples,
        weights=weights,
        initial=initial,
        after=[v.numpy() for v in reference.variables],
        history=history,
        names=[v.path for v in reference.variables],
    )


# Largest reduction of `one_step`: the segmentation loss over the 2 source images' pixels.
BOUND = float32_error_bound(num_terms=2 * SIZE[0] * SIZE[1])
# The methods' steps (`method_steps`): the same sums; the output-space discriminator adds its 5
# convolutions (10 reductions) to the backward pass's depth.
METHOD_BOUND = float32_error_bound(num_terms=2 * SIZE[0] * SIZE[1], depth=BACKWARD_DEPTH + 10)


# ---------------------------------------------------------------------------------------------
# Distribution


def _assert_same_as_one_step(one_step, values, history):
    """`values` (the model's variables after one step) and `history` are `one_step`'s."""
    assert_same_step(
        one_step.initial, one_step.after, values, one_step.names, bound=BOUND,
        logs=(one_step.history, history),
    )  # fmt: skip


def test_a_step_run_eagerly_matches_the_compiled_step(one_step):
    # `compile(run_eagerly=True)` (a user's debugging run; the multi-worker test's methods) runs
    # the same step op by op; its logs are values, not variables.
    model = _model()
    model.compile(run_eagerly=True)
    model.set_weights(one_step.weights)
    history = _fit(model, global_batch(*one_step.examples))
    _assert_same_as_one_step(one_step, [v.numpy() for v in model.variables], history)
    assert history["skipped_steps"] == [0.0]


def test_two_worker_multi_worker_mirrored_matches_a_single_process(
    one_step, method_steps, tmp_path, free_ports
):
    # Two processes, one CPU replica each, each reading its shard: [1 source ; 1 target] per
    # replica. The reference is one device on [both sources ; both targets]. One step: from the
    # second on, a rounding-level difference can move a position across the confusion loss's
    # clip at 2, whose gradient is discontinuous there (seen at 0.5% of the updates). The same
    # for one step of each method of uada.methods (`method_steps`, on the same examples).
    source, labels, target = one_step.examples
    inputs = tmp_path / "inputs.npz"
    methods = {}
    for mode, step in method_steps.items():
        np.testing.assert_array_equal(step.examples[0], source)
        methods[f"{mode}_num_weights"] = np.asarray(len(step.weights))
        methods.update({f"{mode}_weight_{i}": w for i, w in enumerate(step.weights)})
    np.savez(
        inputs,
        image_size=np.asarray(SIZE),
        steps=np.asarray(1),
        num_weights=np.asarray(len(one_step.weights)),
        source_images=source,
        source_labels=labels,
        target_images=target,
        methods=np.asarray(list(method_steps)),
        **{f"weight_{i}": w for i, w in enumerate(one_step.weights)},
        **methods,
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
        results = [p.communicate(timeout=HANG_GUARD_SECONDS) for p in processes]
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
        values = [result[f"variable_{i}"] for i in range(len(one_step.names))]
        _assert_same_as_one_step(one_step, values, history)
        for mode, step in method_steps.items():
            prefix = f"{mode}_log_"
            history = {k[len(prefix) :]: result[k] for k in result.files if k.startswith(prefix)}
            values = [result[f"{mode}_variable_{i}"] for i in range(len(step.names))]
            assert_same_step(
                step.initial, step.after, values, step.names, bound=METHOD_BOUND,
                logs=(step.history, history), log_keys=("seg_loss", "loss"),
            )  # fmt: skip


def _mirrored_step(one_step, strategy):
    """One step of a model built under `strategy` from `one_step`'s weights, on
    `distributed_train_dataset` of `one_step`'s examples (one of each domain per replica);
    returns the model's variables after it and the `fit` logs."""
    data = distribute.distributed_train_dataset(
        strategy, *_datasets(*one_step.examples), batch_size=1, augment=False, shuffle_buffer=1
    )
    with strategy.scope():
        distributed = _model()
        distributed.compile()
    distributed.set_weights(one_step.weights)
    history = distributed.fit(data, steps_per_epoch=1, epochs=1, verbose=0).history
    return [v.numpy() for v in distributed.variables], history


def test_mirrored_fit_on_the_distributed_dataset_matches_a_single_device_step(
    one_step, mirrored_strategy
):
    source, labels, target = one_step.examples
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
    _assert_same_as_one_step(one_step, *_mirrored_step(one_step, strategy))


def test_two_source_and_two_target_images_per_replica_match_a_single_device_step(
    mirrored_strategy,
):
    # Two replicas, each [2 source ; 2 target] (Keras splits each element of a dataset that is
    # not distributed), synchronized DAN == one device on [4 source ; 4 target]: statistics over
    # all source samples, seg loss over all valid pixels (unequal counts per replica).
    source, labels, target = tiny_examples(4)
    batch = global_batch(source, labels, target)
    reference = _model()
    reference.compile()
    with mirrored_strategy.scope():
        distributed = _model()
        distributed.compile()
    assert distributed.representation.get_layer("extension_norm").synchronized
    distributed.set_weights(reference.get_weights())
    initial = [v.numpy() for v in reference.variables]
    logs = [_fit(model, batch) for model in (reference, distributed)]
    assert_same_step(
        initial, [v.numpy() for v in reference.variables],
        [v.numpy() for v in distributed.variables], [v.path for v in reference.variables],
        bound=float32_error_bound(num_terms=4 * SIZE[0] * SIZE[1]), logs=logs,
    )  # fmt: skip
    assert int(distributed.seg_optimizer.iterations.numpy()) == 1


# The faults a distributed implementation can have; each must move some update far beyond `BOUND`.
FAULTS = (
    "mean_instead_of_sum",  # every all-reduce averages: gradients, counts, statistics
    "skipped_replica",  # replica 1's share never reaches the sums
    "unsynchronized_statistics",  # DAN's source statistics per replica
    "dropped_confusion_term",  # replica 1 leaves L_conf out of its G objective
)


def _inject_switchable_faults(switch, patch):
    """Builds every fault of `FAULTS` into the distributed step traced while `patch` holds, each
    computed only while `switch` (an int variable read when the step runs) holds its index in
    `FAULTS`; with any other value the step computes what the library does (the only extra ops
    multiply by 1 or select the library's value)."""
    all_reduce = tf.distribute.ReplicaContext.all_reduce
    moments = source_first_normalization._moments
    replica_sum = source_first_normalization._replica_sum
    confusion_loss = losses.confusion_loss

    def on(fault):
        return tf.equal(switch, FAULTS.index(fault))

    def scaled(value, factor):
        return tf.nest.map_structure(
            lambda v: v * tf.cast(factor, v.dtype) if v.dtype.is_floating else v, value
        )

    def faulty_all_reduce(context, op, value, options=None):
        # A mean is the sum of the values divided by the replica count (a power of two: exact).
        mean = 1.0 / context.num_replicas_in_sync if op == tf.distribute.ReduceOp.SUM else 1.0
        factor = tf.where(on("mean_instead_of_sum"), mean, 1.0)
        keep = tf.logical_or(
            tf.equal(context.replica_id_in_sync_group, 0), tf.logical_not(on("skipped_replica"))
        )
        return all_reduce(context, op, scaled(value, factor * tf.cast(keep, tf.float32)), options)

    def faulty_moments(x, axes, channel, synchronized):
        local = moments(x, axes, channel, False)
        synced = moments(x, axes, channel, synchronized)
        return tuple(
            tf.where(on("unsynchronized_statistics"), a, b)
            for a, b in zip(local, synced, strict=True)
        )

    def faulty_replica_sum(value, synchronized):
        return tf.where(on("unsynchronized_statistics"), value, replica_sum(value, synchronized))

    def faulty_confusion_loss(logits, num_source, **kwargs):
        context = tf.distribute.get_replica_context()
        keep = tf.logical_or(
            tf.equal(context.replica_id_in_sync_group, 0),
            tf.logical_not(on("dropped_confusion_term")),
        )
        return confusion_loss(logits, num_source, **kwargs) * tf.cast(keep, tf.float32)

    patch.setattr(tf.distribute.ReplicaContext, "all_reduce", faulty_all_reduce)
    patch.setattr(source_first_normalization, "_moments", faulty_moments)
    patch.setattr(source_first_normalization, "_replica_sum", faulty_replica_sum)
    patch.setattr(losses, "confusion_loss", faulty_confusion_loss)


@pytest.fixture(scope="module")
def faulty_mirrored_steps(one_step, mirrored_strategy):
    """`{fault: values}`: the model's variables after the step `_mirrored_step` takes (the
    session's strategy, `one_step`'s weights and examples) with `fault` (one of `FAULTS`) switched
    on, and with none (`None`, and `"None again"`).

    The step is traced once, with every fault built in behind a switch it reads when it runs
    (`_inject_switchable_faults`); each run puts the model's and its optimizers' variables back
    to their values before the first step and calls the same traced function again (on the same
    iterator: `fit` would retrace for a new one). All runs happen here, before the next test's
    `keras.utils.clear_session` drops the function's instantiated kernels."""
    switch = tf.Variable(-1, trainable=False, name="fault_switch")
    data = distribute.distributed_train_dataset(
        mirrored_strategy, *_datasets(*one_step.examples), batch_size=1, augment=False,
        shuffle_buffer=1,
    )  # fmt: skip
    with mirrored_strategy.scope():
        model = _model()
        model.compile()
    model.set_weights(one_step.weights)
    state = [*model.variables, *model.seg_optimizer.variables, *model.domain_optimizer.variables]
    initial = [v.numpy() for v in state]
    # Each step takes one example per replica: both examples, every step the same two.
    iterator = iter(data)
    model.make_train_function()
    with pytest.MonkeyPatch.context() as patch:
        _inject_switchable_faults(switch, patch)
        model.train_function(iterator)  # traces the step

    def run(fault):
        switch.assign(FAULTS.index(fault) if fault in FAULTS else -1)
        for variable, value in zip(state, initial, strict=True):
            variable.assign(value)
        model.train_function(iterator)
        return [v.numpy() for v in model.variables]

    return {fault: run(fault) for fault in (None, "None again", *FAULTS)}


def test_the_step_with_every_fault_switched_off_is_the_library_step(
    one_step, faulty_mirrored_steps
):
    # With no fault switched on, the step that carries the faults is the library's step, and a
    # run starts from the same values as the first: the comparison passes, and twice the same.
    values = faulty_mirrored_steps[None]
    assert_same_step(one_step.initial, one_step.after, values, one_step.names, bound=BOUND)
    again = faulty_mirrored_steps["None again"]
    for name, a, b in zip(one_step.names, values, again, strict=True):
        np.testing.assert_array_equal(b, a, err_msg=name)


@pytest.mark.parametrize("fault", FAULTS)
def test_the_distributed_comparison_fails_for_a_faulty_distributed_step(
    one_step, faulty_mirrored_steps, fault
):
    values = faulty_mirrored_steps[fault]
    with pytest.raises(AssertionError, match="update differs by"):
        assert_same_step(one_step.initial, one_step.after, values, one_step.names, bound=BOUND)


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


@pytest.mark.parametrize(
    "name, jit_compile, loss_rtol, update_bound",
    [
        # XLA float32: the same maths, other fusions and summation orders (BOUND).
        ("none", True, BOUND, BOUND),
        # Low precision rounds every activation to its mantissa (unit roundoff 2**-9 for
        # bfloat16, 2**-12 for float16); over the forward pass's ~25 layers the losses are
        # within 2 * 25 * that. The update is another computation, not a rounding of this one:
        # low-precision activations turn a deep net's step by tens of percent of its norm
        # (0.37 for bfloat16, 0.13 for float16 measured). Its bound excludes the faults: a lost
        # update is off by 1, a reversed one by 2, a missed unscaling by 2**15.
        ("mixed_bfloat16", False, 50 * 2.0**-9, 0.75),
        ("mixed_float16", False, 50 * 2.0**-12, 0.75),
        ("mixed_bfloat16", True, 50 * 2.0**-9, 0.75),
    ],
    ids=["none-xla", "mixed_bfloat16", "mixed_float16", "mixed_bfloat16-xla"],
)
def test_low_precision_and_xla_steps_stay_close_to_float32(one_step, name, jit_compile, loss_rtol,
                                                           update_bound):  # fmt: skip
    precision.set_precision(name)
    model = _model()
    model.set_weights(one_step.weights)
    model.compile(jit_compile=jit_compile)
    history = _fit(model, global_batch(*one_step.examples))
    assert model.representation.compute_dtype == (
        "float32" if name == "none" else name.removeprefix("mixed_")
    )
    assert all(v.dtype == "float32" for v in model.trainable_variables)
    assert model.segmenter.output.dtype == "float32"
    assert history["skipped_steps"] == [0.0]
    for key in ("seg_loss", "domain_loss", "confusion_loss", "loss"):
        np.testing.assert_allclose(history[key], one_step.history[key], rtol=loss_rtol, err_msg=key)
    # The weight updates of one step (not the weights, which barely move), relative to the
    # norm of all of them: a low-precision step is close as a whole, not variable by variable.
    # (From the second step on, the confusion loss's clip makes the comparison chaotic; see
    # above.)
    index = {name: i for i, name in enumerate(one_step.names)}
    updates, reference_updates = [], []
    for v in model.trainable_variables:
        i = index[v.path]
        updates.append(v.numpy().ravel() - one_step.initial[i].ravel())
        reference_updates.append(one_step.after[i].ravel() - one_step.initial[i].ravel())
    updates, reference_updates = np.concatenate(updates), np.concatenate(reference_updates)
    assert np.all(np.isfinite(updates))
    error = np.linalg.norm(updates - reference_updates) / np.linalg.norm(reference_updates)
    assert error < update_bound, error
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
    history = _fit(model, global_batch(*tiny_examples(2)), steps=1)
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
    result = run_main(REPO / "benchmarks" / "run_all.py", "--quick")
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
