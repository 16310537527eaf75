"""AdaBN: a model's normalization statistics recomputed on a domain's images, at test time.

Adaptive batch normalization (Li, Wang, Shi, Liu, Hou. *Revisiting Batch Normalization For
Practical Domain Adaptation.* arXiv:1603.04779, 2016) keeps every learned weight and replaces the
moving statistics of each batch-normalization layer by the statistics of that layer's inputs on
the images of the domain the model is tested on. It is the natural baseline beside DAN: DAN keeps
the *source* statistics for every domain; AdaBN uses each test domain's own.

`adapt_statistics(model, images)` does this exactly, layer by layer in network order:

    for each normalization layer L_i with moving statistics, in the order the network runs:
        run the model on every image, L_1 .. L_{i-1} already adapted and in inference mode;
        moving_mean_i     = mean(x_i)                  per channel, over every image and
        moving_variance_i = mean((x_i - mean(x_i))^2)  position (x_i: L_i's inputs)

The variance is the biased (population) variance, as Keras' batch normalization uses for its
moving statistics. The statistics are exact over all the images, not an exponential moving
average: each batch's moments are combined in float64 weighted by the batch's number of images
(every batch has the same height and width), with the pairwise formula
`var = sum_b n_b (var_b + (mean_b - mean)^2) / sum_b n_b`.

Which layers are adapted: every `keras.layers.BatchNormalization`, which includes uada's
`DomainAgnosticNormalization` and `SplitBatchNormalization`, in the model and its nested models
(R's backbone and extension, S's DAN for a `UADAModel.segmenter`). `"instance"` normalization
(`GroupNormalization`) and `"none"` have no moving statistics: they are left as they are.

Cost: one pass over the images per adapted layer (ResNet-50 has 53, the demo's `resnet_tiny` 17,
plus R's extension and S's DAN). Use `max_images` to bound it.

How one layer's batch moments are read: the layer alone runs in training mode
(`trainable=True`, every other normalization layer `trainable=False`, which Keras batch
normalization runs in inference mode even under `training=True`) with `momentum=0`, so that after
each batch its moving statistics are that batch's moments, computed by the layer's own code.

Example:

```python
model, _ = workdir_lib.load_model(config, workdir)
images = dataset.map(lambda image, label: image)       # batches [N, H, W, 3]
with adabn.adapted_statistics(model.segmenter, images):
    logits = model.segmenter(test_images, training=False)
# the original statistics are back
```
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf

# The normalization statistics a domain is evaluated with (`python -m uada.evaluate
# --adapt_statistics`): the model's own, or (AdaBN) those of the evaluated domain's images.
ADAPT_STATISTICS = ("none", "target")


# Batches of a layer's pass run eagerly before the model is traced for the rest of the pass.
_EAGER_BATCHES = 16


def normalization_layers(model):
    """The layers of `model` with moving statistics, nested models included, in network order.

    Args:
        model: a functional `keras.Model` (its `layers` are in the order the network runs them).

    Returns:
        A list of `keras.layers.BatchNormalization` (subclasses included).
    """
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += normalization_layers(layer)
    return found


def adapt_statistics(model, images, *, max_images=None):
    """Sets the moving statistics of every normalization layer of `model` to those of `images`.

    Args:
        model: a functional `keras.Model` from images to outputs (e.g. `UADAModel.segmenter`).
        images: a `tf.data.Dataset` (or any iterable) of image batches `[N, H, W, 3]`, or of
            `(images, ...)` tuples (only the images are used), all of one height and width.
        max_images: use only the first `max_images` images; `None` or 0 for all.

    Returns:
        `{layer name: (mean, variance)}`: the statistics set, float32 arrays `[C]`.

    Raises:
        ValueError: `images` is empty or its batches differ in height and width.
    """
    layers = normalization_layers(model)
    saved = [(layer.trainable, layer.momentum) for layer in layers]
    adapted = {}
    try:
        for layer in layers:
            layer.trainable = False
        for layer in layers:
            layer.trainable, layer.momentum = True, 0.0
            mean, variance = _input_moments(model, layer, images, max_images)
            layer.moving_mean.assign(mean.astype(np.float32))
            layer.moving_variance.assign(variance.astype(np.float32))
            layer.trainable = False
            adapted[layer.name] = (layer.moving_mean.numpy(), layer.moving_variance.numpy())
    finally:
        for layer, (trainable, momentum) in zip(layers, saved, strict=True):
            layer.trainable, layer.momentum = trainable, momentum
    return adapted


def _input_moments(model, layer, images, max_images):
    """Exact float64 mean and biased variance of `layer`'s inputs over all `images`."""

    def forward(batch):
        return model(batch, training=True)

    counts, means, variances = [], [], []
    size = None
    taken = 0
    for batch in images:
        batch = batch[0] if isinstance(batch, tuple | list) else batch
        if max_images:
            batch = batch[: max_images - taken]
        if batch.shape[0] == 0:
            break
        if size is None:
            size = tuple(batch.shape[1:3])
        elif tuple(batch.shape[1:3]) != size:
            raise ValueError(
                "Every batch of `images` must have the same height and width (the statistics "
                f"weigh each batch by its number of images). Received: {size} and "
                f"{tuple(batch.shape[1:3])}"
            )
        if len(counts) == _EAGER_BATCHES:
            # A long pass pays for tracing (once per layer: which layer runs in training mode is
            # fixed at trace time); a short one runs faster eagerly.
            forward = tf.function(forward, reduce_retracing=True, autograph=False)
        forward(batch)  # momentum 0: the moving statistics are now this batch's moments
        counts.append(batch.shape[0])
        means.append(layer.moving_mean.numpy().astype(np.float64))
        variances.append(layer.moving_variance.numpy().astype(np.float64))
        taken += batch.shape[0]
        if max_images and taken >= max_images:
            break
    if not counts:
        raise ValueError(f"`images` holds no image to compute {layer.name}'s statistics from.")
    weights = np.asarray(counts, np.float64)[:, None] / sum(counts)
    means, variances = np.stack(means), np.stack(variances)  # [batches, C]
    mean = np.sum(weights * means, axis=0)
    variance = np.sum(weights * (variances + (means - mean) ** 2), axis=0)
    return mean, variance


@contextlib.contextmanager
def adapted_statistics(model, images, *, max_images=None):
    """Adapts `model`'s statistics to `images` (`adapt_statistics`) and restores them on exit.

    Yields:
        `{layer name: (mean, variance)}` as `adapt_statistics` returns it.
    """
    layers = normalization_layers(model)
    original = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    try:
        yield adapt_statistics(model, images, max_images=max_images)
    finally:
        for layer, (mean, variance) in zip(layers, original, strict=True):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)
