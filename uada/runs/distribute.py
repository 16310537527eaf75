"""`tf.distribute` for UADA training: the strategy by name and source-first per-replica batches.

Strategies (`get_strategy`):

| name | replicas |
|---|---|
| `"default"` | one: the default strategy (one device, no all-reduce) |
| `"mirrored"` | `MirroredStrategy`: all local GPUs, the given devices, or the local CPU devices |
| `"multi_worker"` | `MultiWorkerMirroredStrategy`: the `TF_CONFIG` workers' GPUs (or CPUs) |

Create the strategy first thing in the program (before any other TensorFlow op; for
`"multi_worker"` this is required), then build and compile the model under `strategy.scope()`:
`uada.models.build_uada_model` then makes every normalization synchronized.

Batch composition. With R replicas in sync and a per-replica batch of `b` images per domain:

- each replica's batch is source first, `[b source ; b target]`, as `UADAModel.train_step`
  receives it (the model concatenates the source and target images of its replica);
- one step consumes the global batch of `R * b` source and `R * b` target images;
- the step equals the single-device step on `[all R * b source ; all R * b target]`: DAN's source
  statistics are all-reduced over every replica's source samples (count, sum and sum of squares),
  `L_seg` is divided by the global number of valid source pixels, the mean losses and the
  gradients are averaged over the replicas (`tests/models/test_scale.py` checks this).

The paper's batch is 2 + 2 on one GPU: `b = 2` on one replica. On R replicas, `b = 2` gives a
global batch of 2R + 2R (R times the images per step: divide `steps_per_epoch` by R to keep an
epoch one pass over Cityscapes), while `b = 1` on two replicas is exactly the paper's step.
Each replica's batch is built whole by its worker's input pipeline (batched with
`drop_remainder=True`: static shapes, as the model needs); nothing is split or rebatched.

Input pipelines: `distribute_dataset` calls a dataset function once per input pipeline (one per
worker) through `strategy.distribute_datasets_from_function`; the function returns per-replica
batches and the pipeline's local replicas take its elements in turn. `distributed_train_dataset`
does this for `uada.data.pipeline.train_dataset`, each worker reading its own shard of both
domains. Pass the result to `UADAModel.fit` (Keras uses a `tf.distribute.DistributedDataset` as
it is) with `steps_per_epoch` (the stream is infinite).
"""

import json
import os

import tensorflow as tf

from uada.names import STRATEGIES


def get_strategy(name="default", devices=None):
    """Returns the `tf.distribute.Strategy` named `name`.

    Args:
        name: one of `STRATEGIES` (see the module docstring).
        devices: for `"mirrored"` only: the devices of the replicas, e.g.
            `["/gpu:0", "/gpu:1"]`; `None` for all local GPUs (the CPU if there is none).

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        ValueError: for an unknown `name`, `devices` with another strategy than `"mirrored"`,
            or, for `"multi_worker"`, a missing or invalid `TF_CONFIG` environment variable.
    """
    if name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}. Received: strategy={name!r}")
    if devices is not None and name != "mirrored":
        raise ValueError(
            f"`devices` is only used by the 'mirrored' strategy. Received: strategy={name!r}, "
            f"devices={devices!r}"
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices is None and not tf.config.list_logical_devices("GPU"):
            # No GPU: every local (logical) CPU device is a replica; normally just one.
            devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    tf_config_cluster(os.environ.get("TF_CONFIG"))
    return tf.distribute.MultiWorkerMirroredStrategy()


def tf_config_cluster(tf_config):
    """Validates the `TF_CONFIG` of a multi-worker run; returns `(workers, task_index)`.

    Args:
        tf_config: the value of the `TF_CONFIG` environment variable (JSON), e.g.
            `{"cluster": {"worker": ["host1:port", "host2:port"]},
            "task": {"type": "worker", "index": 0}}`, or `None` when it is not set.

    Returns:
        `(workers, task_index)`: the list of worker addresses and this worker's index.
    """
    help_text = (
        'the "multi_worker" strategy reads the cluster from the TF_CONFIG environment variable, '
        'e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
        '"task": {"type": "worker", "index": 0}}\' (the same cluster on every worker, its own '
        "index on each)"
    )
    if not tf_config:
        raise ValueError(f"`TF_CONFIG` is not set: {help_text}. Received: TF_CONFIG={tf_config!r}")
    try:
        config = json.loads(tf_config)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"`TF_CONFIG` is not valid JSON ({error}): {help_text}. Received: "
            f"TF_CONFIG={tf_config!r}"
        ) from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    workers = cluster.get("worker") if isinstance(cluster, dict) else None
    if not (isinstance(workers, list) and workers and all(isinstance(w, str) for w in workers)):
        raise ValueError(
            f'`TF_CONFIG` must name the workers in "cluster": {{"worker": [...]}}: {help_text}. '
            f"Received: TF_CONFIG={tf_config!r}"
        )
    index = task.get("index") if isinstance(task, dict) else None
    if (
        not isinstance(task, dict)
        or task.get("type") not in ("worker", "chief")
        or isinstance(index, bool)
        or not isinstance(index, int)
        or not 0 <= index < len(cluster.get(task.get("type"), []))
    ):
        raise ValueError(
            f'`TF_CONFIG` must give this process\'s "task": {{"type": "worker", "index": i}} with '
            f"i an index into the worker list: {help_text}. Received: TF_CONFIG={tf_config!r}"
        )
    return workers, index


def distribute_dataset(strategy, dataset_fn):
    """Distributes per-replica batches built by `dataset_fn`, one input pipeline per worker.

    Args:
        strategy: a `tf.distribute.Strategy`.
        dataset_fn: `dataset_fn(input_context)` -> a `tf.data.Dataset` of *per-replica*
            batches (`((source_images, source_labels), target_images)`, each batched with
            `drop_remainder=True`); `input_context` is a `tf.distribute.InputContext` with
            `num_input_pipelines` and `input_pipeline_id`, to shard the inputs by.

    Returns:
        A `tf.distribute.DistributedDataset` for `UADAModel.fit`: each step, every replica gets
        one element of its worker's dataset (the local replicas take the elements in turn).
    """
    if not callable(dataset_fn):
        raise TypeError(
            f"`dataset_fn` must be a function of a tf.distribute.InputContext. "
            f"Received: dataset_fn={dataset_fn!r}"
        )
    return strategy.distribute_datasets_from_function(dataset_fn)


def distributed_train_dataset(strategy, source, target=None, *, batch_size=2, seed=0,
                              skip_steps=0, **kwargs):  # fmt: skip
    """`uada.data.pipeline.train_dataset` distributed with source-first per-replica batches.

    Each worker reads the shard `input_pipeline_id` of `num_input_pipelines` of both domains
    (`tf.data.Dataset.shard`) and its own seed, `seed * num_input_pipelines +
    input_pipeline_id` (`seed` itself on a single worker), so that no two workers read the same
    images or draw the same augmentations.

    Args:
        strategy: a `tf.distribute.Strategy`.
        source, target: as for `uada.data.pipeline.train_dataset` (`target` None for a
            source-only stream).
        batch_size: images per domain *per replica* (the global batch is `batch_size` times
            `strategy.num_replicas_in_sync` per domain). Defaults to 2.
        seed: the base seed (a Python int).
        skip_steps: training steps already taken: each input pipeline skips the elements its
            replicas consumed in them. The streams are deterministic from `seed`, so this resumes
            exactly where a run stopped (tf.distribute's iterators cannot be checkpointed).
        **kwargs: the other arguments of `train_dataset` (`augment`, `image_size`,
            `shuffle_buffer`, `symbolic_checkpoint`).

    Returns:
        A `tf.distribute.DistributedDataset` of `((source_images, source_labels),
        target_images)` (or `(source_images, source_labels)`) per replica.
    """
    from uada.data import pipeline  # training-level helper; the data package knows nothing of it

    if not isinstance(seed, int):
        raise ValueError(f"`seed` must be a Python int. Received: seed={seed!r}")

    def dataset_fn(context):
        def shard(dataset):
            if dataset is None or context.num_input_pipelines == 1:
                return dataset
            return dataset.shard(context.num_input_pipelines, context.input_pipeline_id)

        dataset = pipeline.train_dataset(
            shard(source),
            shard(target),
            batch_size=batch_size,
            seed=seed * context.num_input_pipelines + context.input_pipeline_id,
            **kwargs,
        )
        # Each step, the pipeline's local replicas take one per-replica batch each.
        local_replicas = strategy.num_replicas_in_sync // context.num_input_pipelines
        return dataset.skip(skip_steps * local_replicas) if skip_steps else dataset

    return distribute_dataset(strategy, dataset_fn)
