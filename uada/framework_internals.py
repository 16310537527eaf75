"""Every place where uada relies on a private part of Keras or TensorFlow, and why.

Each entry is a small named function; `tests/test_framework_internals.py` exercises each
one against the installed Keras and TensorFlow and fails with the internal's name when an upgrade
removes or changes it.

- `no_symbolic_build` overrides `keras.Model._maybe_symbolic_build` (Keras 3.15's TF trainer):
  `fit` has no public switch to skip its symbolic build.
- `strategy_supports_no_merge_call` calls
  `tf.__internal__.distribute.strategy_supports_no_merge_call`: tf.distribute has no public test
  for "may an update in this replica context skip `merge_call`"; Keras' `LossScaleOptimizer`
  uses the same function.
- `reducible_logs` works around Keras' private `reduce_per_replica` (its TF trainer), which
  reduces a multi-worker step's logs in a way `train_step` cannot configure.
- `parse_checkpoint_state` parses a `checkpoint` state file with TensorFlow's private
  `CheckpointState` proto: the public `tf.train.get_checkpoint_state` logs a warning and returns
  None for an unreadable state file, which would turn a corrupt workdir into a silent restart.

- `custom_gradients_owned_by_the_graph` reaches TensorFlow's process-wide gradient registry
  (`ops._gradient_registry`): in a traced function, `tf.custom_gradient` registers its gradient
  there and never removes it, so every traced training step would stay in memory for the life
  of the process.

- `unlowered_switch_case` calls `tf.switch_case`'s own helper
  (`control_flow_switch_case._indexed_case_helper`) for its `lower_using_switch_merge` argument,
  which `tf.switch_case` does not take: lowered, every branch of the training augmentation's
  random choices got its kernels at each input iterator's creation.

`is_multi_worker` is TensorFlow's private rule "is this a multi-worker run" written with public
APIs: `reducible_logs` must agree with it, and the trainer uses it to choose the chief.
"""

import contextlib
import functools
import weakref

import tensorflow as tf
from google.protobuf import text_format
from tensorflow.python.framework import ops
from tensorflow.python.ops import control_flow_switch_case
from tensorflow.python.training import checkpoint_state_pb2


def no_symbolic_build(model, iterator=None, data_batch=None):
    """Replaces `keras.Model._maybe_symbolic_build` (assign it as that method): builds nothing.

    Keras' TF trainer calls this hook from `fit`, `evaluate` and `predict` to build the model's
    metrics and optimizer on a batch drawn from the input. `UADAModel` is built by `__init__` and
    its two optimizers by `compile`; the symbolic build would only draw a batch and, under
    `MultiWorkerMirroredStrategy`, fail to reduce the per-replica batch to one batch (Keras 3.15:
    `strategy.reduce` of images raises).
    """
    del model, iterator, data_batch


def strategy_supports_no_merge_call():
    """Whether the current strategy's replica context may run an optimizer update without
    `merge_call` (no strategy, or XLA on GPUs): then a `tf.cond` around the update is allowed.

    Reaches `tf.__internal__.distribute.strategy_supports_no_merge_call`, which Keras'
    `LossScaleOptimizer` uses for the same decision."""
    return tf.__internal__.distribute.strategy_supports_no_merge_call()


def reducible_logs(logs, strategy):
    """`train_step`'s logs shaped so that Keras can reduce them over the replicas.

    Keras 3.15 (`reduce_per_replica` in its TF trainer) reduces the logs of a multi-worker
    `MultiWorkerMirroredStrategy` step with `strategy.reduce(MEAN, value, axis=0)`, which needs
    an axis: each scalar gets one (shape `[1]`; the mean over the replicas is a scalar again).
    Other strategies get the logs as they are.
    """
    if not is_multi_worker(strategy):
        return logs
    return {key: tf.reshape(value, [1]) for key, value in logs.items()}


def is_multi_worker(strategy):
    """Whether `strategy` is a `MultiWorkerMirroredStrategy` over more than one worker (the
    public equivalent of its `extended._in_multi_worker_mode()`: chief and worker tasks of its
    cluster, one worker when the cluster is empty). A single worker runs as a single process."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return len(cluster.get("chief", [])) + len(cluster.get("worker", [])) > 1


def parse_checkpoint_state(text):
    """Parses the text of a `tf.train.CheckpointManager` state file (`checkpoint`).

    Reaches `tensorflow.python.training.checkpoint_state_pb2.CheckpointState`, the proto the file
    is written in.

    Returns:
        The `CheckpointState` (`model_checkpoint_path`, `all_model_checkpoint_paths`).

    Raises:
        google.protobuf.text_format.ParseError: the text is not a checkpoint state.
    """
    return text_format.Parse(text, checkpoint_state_pb2.CheckpointState())


@contextlib.contextmanager
def custom_gradients_owned_by_the_graph():
    """Within it, what `tf.custom_gradient` registers lives as long as the traced graph.

    Inside a traced function `tf.custom_gradient` registers its gradient function in TensorFlow's
    process-wide gradient registry under a new name (`CustomGradient-<uid>`) and never removes
    it; the function's closure holds tensors of the graph, so every traced graph that used one
    stayed in memory until the process ended (tensorflow/tensorflow#27492 and #97697). uada's
    normalization kernel and `ReplicaContext.all_reduce` both use it: each trace of a training
    step kept about 40,000 Python objects, which every later garbage collection walked again.

    On exit each entry registered within is held by the graph being traced (a collection) and
    reached from the registry through a weak reference (a symbolic gradient of the graph still
    finds it), and the entry is removed when the graph is collected. Eagerly, nothing changes.
    """
    registry = ops._gradient_registry._registry  # {name: {"type": function, "location": ...}}
    before = set(registry)
    try:
        yield
    finally:
        if not tf.executing_eagerly():
            graph = ops.get_default_graph()
            for name in set(registry) - before:
                if not name.startswith("CustomGradient-"):
                    continue
                function = registry[name]["type"]
                graph.add_to_collection("uada_custom_gradients", function)
                registry[name]["type"] = functools.partial(_weak_call, weakref.ref(function))
                weakref.finalize(graph, registry.pop, name, None)


def _weak_call(reference, *args):
    return reference()(*args)


def unlowered_switch_case(branch_index, branch_fns, name="switch_case"):
    """`tf.switch_case(branch_index, branch_fns, name=name)` whose branches stay functions.

    In a function body (a `tf.data` map function) TensorFlow lowers `tf.switch_case` to
    switch/merge ops: the ops of every branch are inlined into the body and get their kernels
    when the body is instantiated, which `tf.data` does at every iterator's creation, although
    one branch runs per element. Unlowered, the `Case` op calls the chosen branch as a function,
    whose kernels are made the first time it runs. The same ops run on the same inputs: the
    results are identical. Reaches `control_flow_switch_case._indexed_case_helper`, the helper
    `tf.switch_case` itself calls, for its `lower_using_switch_merge` argument. Eagerly it runs
    the chosen branch, as `tf.switch_case` does.
    """
    return control_flow_switch_case._indexed_case_helper(
        branch_fns, None, branch_index, name, lower_using_switch_merge=False
    )
