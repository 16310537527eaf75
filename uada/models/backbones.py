"""Backbones of R: Keras Applications ResNet-50 v1, dilated to output stride 8, norm swapped.

`build_backbone` takes a plain ResNet v1 (Keras Applications' ResNet-50, or the small
`"resnet_tiny"` of the same layout and layer names for demos and tests) and clones it with
`keras.models.clone_model`:

- output stride 8 (the paper's setup): the strides of `conv4_block1_{0,1}_conv` and
  `conv5_block1_{0,1}_conv` become 1 and every 3x3 `conv4_*_2_conv` / `conv5_*_2_conv` gets
  dilation 2 / 4; output stride 16 changes conv5 only (dilation 2); output stride 32 is the
  original network;
- every `BatchNormalization` becomes `uada.layers.get_normalization(norm, momentum=0.96,
  epsilon=1e-5)` under the same name, with the weights copied (gamma, beta and the moving
  statistics for `batch`, `split_batch` and `dan`; gamma and beta for `instance`; nothing for
  `none`);
- every convolution whose output feeds only a normalization loses its bias (as in the original's
  slim ResNet), except with `norm="none"`, where the bias is all that is left of the normalization;
  it then starts at zero, as in the original (its slim convolutions get a bias, zero-initialized,
  only when there is no normalizer, and the checkpoint holds none), rather than at Keras'
  pretrained value, which was learned in front of a batch norm. A normalization cancels such a bias
  in the forward pass, but DAN does not cancel it in the backward pass: the target outputs are
  normalized with `stop_gradient` source statistics, so the confusion loss would move the bias,
  with no forward effect and nothing to hold it, and the moving mean would trail it. Pretrained
  biases (Keras' ResNet-50 carries one on every convolution) are folded into the following layer's
  moving mean (`moving_mean -= bias`): exact at inference, and absorbed by the batch statistics in
  training (instance normalization removes a per-channel constant exactly, so it needs no fold);
- an `ImagePreprocessing` layer (`PREPROCESSING`, "caffe": the preprocessing of Keras' ResNet-50
  weights) is put in front, so the backbone takes RGB images in [0, 255].

Dilation does not change any kernel shape, so pretrained weights copy over unchanged. Weights
come from ImageNet (`weights="imagenet"`, ResNet-50 only) or from a Keras weights file of the
plain base model that `build_base_model(name)` builds (Keras' ResNet-50 without its top, or
`resnet_tiny`, e.g. pretrained by `uada.runs.backbone_pretraining.pretrain_resnet_tiny`); a file is
read by the same checks and errors for both.
"""

import functools
import os

import keras

from uada.layers import NORMALIZATIONS, get_normalization
from uada.models.preprocessing import ImagePreprocessing
from uada.names import BACKBONES, OUTPUT_STRIDES

# The input preprocessing of every backbone (`ImagePreprocessing` mode): Keras' ResNet-50 weights
# expect it, and weights pretrained for `resnet_tiny` are trained behind it.
PREPROCESSING = "caffe"

# Stage name -> dilation of its 3x3 convolutions (and stride 1 in its first block).
_STAGE_DILATION = {8: {"conv4": 2, "conv5": 4}, 16: {"conv5": 2}, 32: {}}

# "resnet_tiny": the ResNet v1 layout with one bottleneck block per stage and narrow widths.
_TINY_STEM_FILTERS = 16
_TINY_STAGE_FILTERS = (8, 16, 32, 64)  # bottleneck widths of conv2..conv5; outputs are 4x these
# Keras' ResNet-50 BN epsilon: weights trained in the plain network see (almost) the epsilon of the
# normalizations `build_backbone` puts in their place (1e-5), not Keras' default 1e-3.
_TINY_BN_EPSILON = 1.001e-5


def build_backbone(name="resnet50", norm="dan", output_stride=8, weights=None, *,
                   input_shape=(None, None, 3), synchronized=False,
                   dan_target_epsilon=None):  # fmt: skip
    """Builds R's backbone: images -> the last stage's features.

    Args:
        name: `"resnet50"` (Keras Applications ResNet-50 v1, 2048 output channels) or
            `"resnet_tiny"` (one narrow bottleneck block per stage, 256 output channels; for
            demos and tests).
        norm: the normalization at every BN position, one of `uada.layers.NORMALIZATIONS`.
        output_stride: 8 (the paper), 16 or 32.
        weights: `None` (random initialization), `"imagenet"` (Keras downloads and caches the
            ResNet-50 weights; `"resnet50"` only), or the path to a Keras weights file
            (`.weights.h5` or legacy `.h5`) of the plain base model `build_base_model(name)`:
            Keras' ResNet-50 without its top, or `resnet_tiny` (e.g. written by
            `python -m uada.pretrain`). The file's weights are those of a network fed through
            `ImagePreprocessing(PREPROCESSING)`.
        input_shape: `(H, W, 3)`; `None` for a spatial size accepts any size.
        synchronized: all-reduce the normalization statistics across replicas under
            `tf.distribute` (`batch`, `split_batch`, `dan`).
        dan_target_epsilon: with `norm="dan"`, the epsilon of the target samples
            (`uada.layers.get_normalization`); `None` for 1e-5, the source samples' epsilon.

    Returns:
        A functional `keras.Model` named `f"{name}_os{output_stride}"` from float32 RGB images
        `[N, H, W, 3]` in [0, 255] to features `[N, H/os, W/os, C]`.
    """
    if name not in BACKBONES:
        raise ValueError(f"`name` must be one of {BACKBONES}. Received: name={name!r}")
    if norm not in NORMALIZATIONS:
        raise ValueError(f"`norm` must be one of {NORMALIZATIONS}. Received: norm={norm!r}")
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(
            f"`output_stride` must be one of {OUTPUT_STRIDES}. "
            f"Received: output_stride={output_stride!r}"
        )
    base = build_base_model(name, weights, input_shape=input_shape)
    normalization = functools.partial(
        get_normalization, norm, momentum=0.96, epsilon=1e-5, synchronized=synchronized,
        dan_target_epsilon=dan_target_epsilon,
    )  # fmt: skip
    return _dilate_and_swap_normalization(
        base, norm, normalization, output_stride, name=f"{name}_os{output_stride}"
    )


def build_base_model(name="resnet50", weights=None, *, input_shape=(None, None, 3)):
    """Builds the plain ResNet v1 that `build_backbone` dilates: Keras BN, convolution biases.

    Its weights are what a weights file for `build_backbone` holds: write one with
    `build_base_model(name).save_weights(path)` (the model takes preprocessed images:
    put `ImagePreprocessing(PREPROCESSING)` in front when training it).

    Args:
        name: `"resnet50"` (Keras Applications' ResNet-50, `include_top=False`) or
            `"resnet_tiny"`.
        weights: `None`, `"imagenet"` (`"resnet50"` only) or the path to a Keras weights file of
            this model (`.weights.h5` or legacy `.h5`).
        input_shape: `(H, W, 3)`; `None` for a spatial size accepts any size.

    Returns:
        A functional `keras.Model` named `"resnet50"` or `"resnet_tiny"`, output stride 32.

    Raises:
        ValueError: `name` or `weights` is not one of the accepted values, or the file does not
            hold this model's weights (the message names the file and the backbone).
        FileNotFoundError: the weights file does not exist.
    """
    if name not in BACKBONES:
        raise ValueError(f"`name` must be one of {BACKBONES}. Received: name={name!r}")
    if weights == "imagenet" and name == "resnet50":
        return keras.applications.ResNet50(
            include_top=False, weights="imagenet", input_shape=input_shape
        )
    if weights == "imagenet":
        raise ValueError(
            f"The backbone {name!r} has no ImageNet weights; `weights` must be None or the path "
            f"to a Keras weights file of it. Received: weights={weights!r}"
        )
    path = None if weights is None else _weights_file(weights)
    if name == "resnet50":
        model = keras.applications.ResNet50(
            include_top=False, weights=None, input_shape=input_shape
        )
    else:
        model = _resnet_tiny(input_shape)
    if path is not None:
        try:
            model.load_weights(path)
        except ValueError as error:
            raise ValueError(
                f"The weights file {path!r} does not hold the weights of the backbone {name!r} "
                f"(a Keras weights file of `build_base_model({name!r})`): "
                f"{str(error).splitlines()[0]}"
            ) from error
    return model


def _weights_file(weights):
    """Checks that `weights` names an existing Keras weights file; returns its path."""
    if not isinstance(weights, str | os.PathLike):
        raise ValueError(
            f"`weights` must be None, 'imagenet' or the path to a weights file. "
            f"Received: weights={weights!r}"
        )
    path = os.fspath(weights)
    if not path.endswith(".h5"):
        raise ValueError(
            f"`weights` must name a Keras weights file ending in '.weights.h5' or '.h5'. "
            f"Received: weights={path!r}"
        )
    if not os.path.exists(path):
        raise FileNotFoundError(f"`weights` file not found. Received: weights={path!r}")
    return path


def _resnet_tiny(input_shape):
    """A ResNet v1 with Keras Applications' layer names and one narrow block per stage."""
    inputs = keras.Input(shape=input_shape, name="input_layer")
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = keras.layers.Conv2D(_TINY_STEM_FILTERS, 7, strides=2, name="conv1_conv")(x)
    x = _tiny_batch_norm("conv1_bn")(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, filters in enumerate(_TINY_STAGE_FILTERS, start=2):
        x = _bottleneck_v1(x, filters, stride=1 if stage == 2 else 2, name=f"conv{stage}_block1")
    return keras.Model(inputs, x, name="resnet_tiny")


def _bottleneck_v1(x, filters, stride, name):
    """ResNet v1 bottleneck with a projection shortcut: 1x1 (stride) -> 3x3 -> 1x1 (4x)."""
    shortcut = keras.layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
    shortcut = _tiny_batch_norm(f"{name}_0_bn")(shortcut)
    x = keras.layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = _tiny_batch_norm(f"{name}_1_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(x)
    x = _tiny_batch_norm(f"{name}_2_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = keras.layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    x = _tiny_batch_norm(f"{name}_3_bn")(x)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def _tiny_batch_norm(name):
    return keras.layers.BatchNormalization(epsilon=_TINY_BN_EPSILON, name=name)


def _dilate_and_swap_normalization(base, norm, normalization, output_stride, name):
    """Clones a ResNet v1 with the requested output stride and normalization (`norm`, made by
    `normalization(name=...)`); copies weights."""
    dilation = _STAGE_DILATION[output_stride]
    # Convolution name -> the normalization that alone consumes its output (biases to drop).
    normalized_convs = _convs_feeding_only_a_normalization(base)

    def clone_function(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            return normalization(name=layer.name)
        config = layer.get_config()
        stage = layer.name.split("_")[0]
        if layer.name in normalized_convs and norm != "none":
            config["use_bias"] = False
        if isinstance(layer, keras.layers.Conv2D) and stage in dilation:
            if layer.name.endswith(("_block1_0_conv", "_block1_1_conv")):
                config["strides"] = (1, 1)
            if layer.name.endswith("_2_conv"):
                rate = dilation[stage]
                config["dilation_rate"] = (rate, rate)
        return layer.__class__.from_config(config)

    first_layer = base.layers[1].name  # the layer that consumes the images
    preprocessing = ImagePreprocessing(PREPROCESSING, name="preprocessing")

    def call_function(layer, *args, **kwargs):
        if layer.name == first_layer:
            args = (preprocessing(args[0]), *args[1:])
        if kwargs.get("mask", 0) is None:
            # BN's recorded call passes `mask=None`; Identity and GroupNormalization take no mask.
            del kwargs["mask"]
        return layer(*args, **kwargs)

    images = keras.Input(batch_shape=base.inputs[0].shape, name="images")
    clone = keras.models.clone_model(
        base, input_tensors=images, clone_function=clone_function, call_function=call_function
    )
    # The bias of each bias-free convolution, by the name of the normalization that follows it.
    dropped_bias = {
        norm_name: base.get_layer(conv_name).bias.numpy()
        for conv_name, norm_name in normalized_convs.items()
        if base.get_layer(conv_name).use_bias
    }
    for layer in clone.layers:
        if not layer.weights or layer is preprocessing:
            continue
        source = base.get_layer(layer.name).get_weights()
        # Keras orders BN weights [gamma, beta, moving_mean, moving_variance] and
        # GroupNormalization [gamma, beta]: a prefix of the source weights is the right copy
        # (`none` has no weights; a convolution copies [kernel, bias] or its kernel alone).
        weights = source[: len(layer.weights)]
        if layer.name in normalized_convs and len(weights) == 2:  # norm="none": the bias, zero
            weights[1] = weights[1] * 0.0
        if layer.name in dropped_bias and len(weights) == 4:
            # BN(conv(x) + b) with moving mean m == BN(conv(x)) with moving mean m - b.
            weights[2] = weights[2] - dropped_bias[layer.name]
        layer.set_weights(weights)
    return keras.Model(clone.input, clone.output, name=name)


def _convs_feeding_only_a_normalization(model):
    """Returns `{conv name: normalization name}` for every `Conv2D` of `model` whose output is
    consumed by a `BatchNormalization` and by nothing else."""
    consumers = {}  # id of a symbolic tensor -> the layers that take it as an input
    for layer in model.layers:
        inputs = layer.input if isinstance(layer.input, list) else [layer.input]
        for tensor in inputs:
            consumers.setdefault(id(tensor), []).append(layer)
    pairs = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            users = consumers.get(id(layer.output), [])
            if len(users) == 1 and isinstance(users[0], keras.layers.BatchNormalization):
                pairs[layer.name] = users[0].name
    return pairs
