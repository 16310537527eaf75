"""Tests of `uada.framework_internals` against the installed Keras and TensorFlow.

Each test names the private internal it checks: when an upgrade removes or changes it, the failure
says which one, and `framework_internals.py` says what uada needs it for.
"""

import contextlib
import gc
import inspect
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.python.framework import ops

from uada import framework_internals


class CountingModel(keras.Model):
    """A one-layer model with a custom `train_step`, counting the calls of the hook."""

    builds = 0

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.dense.build((None, 2))
        self.built = True

    def call(self, inputs):
        return self.dense(inputs)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        type(self).builds += 1
        framework_internals.no_symbolic_build(self, iterator=iterator, data_batch=data_batch)

    def train_step(self, data):
        return {"mean": tf.reduce_mean(self(data))}


def test_fit_still_calls_the_symbolic_build_hook_that_uada_overrides():
    internal = "keras.Model._maybe_symbolic_build"
    assert hasattr(keras.Model, "_maybe_symbolic_build"), f"{internal} no longer exists"
    parameters = inspect.signature(keras.Model._maybe_symbolic_build).parameters
    assert {"iterator", "data_batch"} <= set(parameters), f"{internal} changed: {parameters}"
    model = CountingModel()
    model.compile(optimizer="sgd")
    CountingModel.builds = 0
    model.fit(np.ones((2, 2), "float32"), epochs=1, verbose=0)
    assert CountingModel.builds >= 1, (
        f"Keras' fit no longer calls {internal}: UADAModel's no-op override does nothing, and fit "
        "may draw a batch under MultiWorkerMirroredStrategy"
    )


def test_uada_model_uses_the_no_op_symbolic_build():
    from uada.models import UADAModel

    assert UADAModel._maybe_symbolic_build is framework_internals.no_symbolic_build


def test_strategy_supports_no_merge_call_without_and_with_a_strategy(mirrored_strategy):
    internal = "tf.__internal__.distribute.strategy_supports_no_merge_call"
    try:
        assert framework_internals.strategy_supports_no_merge_call() is True, internal
    except AttributeError as error:
        pytest.fail(f"{internal} no longer exists: {error}")
    # MirroredStrategy on CPUs updates through merge_call: a replica context must not skip it.
    results = mirrored_strategy.run(
        lambda: tf.constant(framework_internals.strategy_supports_no_merge_call())
    )
    local = [bool(r) for r in mirrored_strategy.experimental_local_results(results)]
    assert local == [False, False], f"{internal} changed its answer under MirroredStrategy"


def test_keras_reduces_logs_with_its_multi_worker_rule(mirrored_strategy):
    from keras.src.backend.tensorflow import trainer

    internal = "keras.src.backend.tensorflow.trainer._collective_all_reduce_multi_worker"
    assert hasattr(trainer, "_collective_all_reduce_multi_worker"), (
        f"{internal} no longer exists: Keras reduces a multi-worker step's logs another way; "
        "check framework_internals.reducible_logs"
    )
    assert "axis=0" in inspect.getsource(trainer.reduce_per_replica), (
        "keras.src.backend.tensorflow.trainer.reduce_per_replica no longer reduces a "
        "multi-worker step's logs along axis 0; check framework_internals.reducible_logs"
    )
    logs = {"loss": tf.constant(1.5)}
    for strategy in (tf.distribute.get_strategy(), mirrored_strategy):
        assert not trainer._collective_all_reduce_multi_worker(strategy)
        assert framework_internals.reducible_logs(logs, strategy) is logs


def test_checkpoint_state_files_of_the_checkpoint_manager_parse(tmp_path):
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(v=tf.Variable(1.0)), str(tmp_path), max_to_keep=2
    )
    for step in (3, 7):
        manager.save(checkpoint_number=step)
    state = framework_internals.parse_checkpoint_state((tmp_path / "checkpoint").read_text())
    assert state.model_checkpoint_path.endswith("ckpt-7")
    assert [p.rsplit("-", 1)[1] for p in state.all_model_checkpoint_paths] == ["3", "7"]
    with pytest.raises(text_format.ParseError):
        framework_internals.parse_checkpoint_state("not a checkpoint state {")


def test_custom_gradients_of_a_traced_step_are_freed_with_its_graph():
    # `tf.custom_gradient` registers in TensorFlow's private `ops._gradient_registry`: the entry
    # must still serve a symbolic gradient while the graph lives, and go away with it.
    @tf.custom_gradient
    def double(x):
        return 2.0 * x, lambda dy: 3.0 * dy  # not autodiff's 2: the registered one is used

    seen = {}

    def trace(owned):
        @tf.function(autograph=False)
        def step(x):
            context = framework_internals.custom_gradients_owned_by_the_graph
            with context() if owned else contextlib.nullcontext():
                y = double(x)
            seen[owned] = (weakref.ref(y.graph), y.op.get_attr("_gradient_op_type").decode())
            return tf.gradients(y, x)[0]  # symbolic: looked up in the registry

        assert float(step(tf.constant(1.0))) == 3.0

    registry = ops._gradient_registry._registry
    for owned in (False, True):
        trace(owned)
        gc.collect()
    graph, name = seen[True]
    assert graph() is None and name not in registry, "check custom_gradients_owned_by_the_graph"
    # What it works around: without it the entry keeps the graph (the day TensorFlow frees it
    # itself, this fails and the workaround can go).
    graph, name = seen[False]
    assert graph() is not None and name in registry
    del registry[name]


def test_an_unlowered_switch_case_keeps_its_branches_as_functions():
    internal = "tensorflow.python.ops.control_flow_switch_case._indexed_case_helper"
    branches = [lambda: tf.constant(1.0), lambda: tf.constant(2.0), lambda: tf.constant(3.0)]

    def case_ops(switch_case):
        graph = tf.function(lambda index: switch_case(index, branches), autograph=False)
        graph = graph.get_concrete_function(tf.TensorSpec([], tf.int32)).graph
        return [op for op in graph.get_operations() if op.type in ("Case", "StatelessCase")]

    (lowered,) = case_ops(tf.switch_case)
    cases = case_ops(framework_internals.unlowered_switch_case)
    assert len(cases) == 1, f"{internal} no longer builds one Case op: {cases}"
    assert cases[0].get_attr("_lower_using_switch_merge") is False, (
        f"{internal} no longer takes lower_using_switch_merge"
    )
    # What the helper is for: tf.switch_case's own op is lowered.
    assert lowered.get_attr("_lower_using_switch_merge") is True
    traced = tf.function(
        lambda index: framework_internals.unlowered_switch_case(index, branches), autograph=False
    )
    for index in (0, 1, 2, 7, -1):  # out of range: the last branch, as tf.switch_case
        index = tf.constant(index)
        expected = float(tf.switch_case(index, branches))
        assert float(traced(index)) == expected
        assert float(framework_internals.unlowered_switch_case(index, branches)) == expected
