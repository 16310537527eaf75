"""The UADA network after the backbone: R's extension, the segmenter S, the domain classifier D.

    images --backbone--> features --extension--> Z --S--> logits at the input size
                                                   \\--D--> per-position domain logit

`Z = R(images)` is `H/8 x W/8 x 256` at output stride 8 (the paper's experimental setup).
"""

import keras

from uada.layers import DomainAgnosticNormalization, get_normalization


def build_representation(backbone, norm="dan", *, filters=256, synchronized=False,
                         dan_target_epsilon=None, name="representation"):  # fmt: skip
    """Builds R: the backbone followed by R's extension, a 1x1 conv to 256, normalization, ReLU.

    The extension conv is He-initialized (fan-in, truncated normal) and has a bias only with
    `norm="none"` (a normalization's `beta` is the bias otherwise).

    Args:
        backbone: a `keras.Model` from images to features, e.g. `build_backbone(...)`.
        norm: the normalization after the 1x1 conv, one of `uada.layers.NORMALIZATIONS`.
        filters: channels of Z. Defaults to 256.
        synchronized: all-reduce normalization statistics across replicas under `tf.distribute`.
        dan_target_epsilon: with `norm="dan"`, the epsilon of the target samples; `None` for
            1e-5, the source samples' (`uada.layers.get_normalization`).
        name: the model name.

    Returns:
        A functional `keras.Model` from images `[N, H, W, 3]` (RGB, [0, 255]) to
        `Z` `[N, H/os, W/os, filters]`.
    """
    images = keras.Input(batch_shape=backbone.inputs[0].shape, name="images")
    x = backbone(images)
    x = keras.layers.Conv2D(
        filters,
        1,
        use_bias=norm == "none",
        kernel_initializer=keras.initializers.HeNormal(),
        name="extension_conv",
    )(x)
    x = get_normalization(
        norm, momentum=0.96, epsilon=1e-5, synchronized=synchronized,
        dan_target_epsilon=dan_target_epsilon, name="extension_norm",
    )(x)  # fmt: skip
    z = keras.layers.ReLU(name="extension_relu")(x)
    return keras.Model(images, z, name=name)


def build_segmentation_head(num_classes=19, image_size=(384, 768), *, input_channels=256,
                            filters=40, synchronized=False, name="segmentation_head"):  # fmt: skip
    """Builds S: Z -> class logits at the input size (the original code's segmenter).

        3x3 conv 256 -> 40 (no bias) -> DAN (beta only, eps 1e-3) -> SELU
        -> 1x1 conv -> num_classes -> 4x4 transposed conv, stride 2 -> bilinear resize to image_size

    The DAN is used in every experiment, whatever R's normalization, as in the
    original code (docs/FIDELITY.md). Called on source
    samples only it is batch normalization over them, which is also what it computes for the
    source samples of a mixed batch (its statistics come from the source).

    Args:
        num_classes: number of logits per pixel. Defaults to 19.
        image_size: `(H, W)` of the input images; the logits are resized to it.
        input_channels: channels of Z. Defaults to 256.
        filters: channels of the 3x3 conv. Defaults to 40.
        synchronized: all-reduce the DAN statistics across replicas under `tf.distribute`.
        name: the model name.

    Returns:
        A functional `keras.Model` from `Z` `[N, h, w, input_channels]` to logits
        `[N, H, W, num_classes]`.
    """
    height, width = _image_size(image_size)
    z = keras.Input(shape=(None, None, input_channels), name="z")
    x = keras.layers.Conv2D(
        filters, 3, padding="same", use_bias=False, kernel_initializer="glorot_uniform",
        name="head_conv",
    )(z)  # fmt: skip
    x = DomainAgnosticNormalization(
        momentum=0.96, epsilon=1e-3, scale=False, synchronized=synchronized, name="head_norm"
    )(x)
    x = keras.layers.Activation("selu", name="head_selu")(x)
    x = keras.layers.Conv2D(
        num_classes, 1, kernel_initializer="glorot_uniform", name="logits_conv"
    )(x)
    x = keras.layers.Conv2DTranspose(
        num_classes, 4, strides=2, padding="same",
        kernel_initializer=keras.initializers.HeNormal(), name="logits_upsample",
    )(x)  # fmt: skip
    # float32 logits under a mixed-precision policy; XLA cannot differentiate a bilinear resize
    # of low-precision values (it mixes float32 and bfloat16 in the backward pass).
    logits = keras.layers.Resizing(
        height, width, interpolation="bilinear", dtype="float32", name="logits_resize"
    )(x)
    return keras.Model(z, logits, name=name)


def build_domain_classifier(*, input_channels=256, units=(200, 100, 50), name="domain_classifier"):
    """Builds D: a per-position MLP on Z (1x1 convs) giving the logit of P(target).

        Z -> 200 -> SELU -> 100 -> SELU -> 50 -> SELU -> 1

    Glorot-uniform kernels, zero biases, no normalization, dropout or weight decay.

    Args:
        input_channels: channels of Z. Defaults to 256.
        units: widths of the hidden 1x1 convs. Defaults to (200, 100, 50).
        name: the model name.

    Returns:
        A functional `keras.Model` from `Z` `[N, h, w, input_channels]` to logits `[N, h, w, 1]`.
    """
    z = keras.Input(shape=(None, None, input_channels), name="z")
    x = z
    for i, width in enumerate(units, start=1):
        x = keras.layers.Conv2D(
            width, 1, activation="selu", kernel_initializer="glorot_uniform", name=f"domain_fc{i}"
        )(x)
    # A float32 logit under a mixed-precision policy.
    logits = keras.layers.Conv2D(
        1, 1, kernel_initializer="glorot_uniform", dtype="float32", name="domain_logits"
    )(x)
    return keras.Model(z, logits, name=name)


def _image_size(image_size):
    if (
        not isinstance(image_size, tuple | list)
        or len(image_size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in image_size)
    ):
        raise ValueError(
            f"`image_size` must be a pair of positive integers (height, width). "
            f"Received: image_size={image_size!r}"
        )
    return int(image_size[0]), int(image_size[1])
