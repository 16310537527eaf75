"""Pretrains `resnet_tiny` on the procedural pretraining set: the demo's ImageNet weights.

`pretrain_resnet_tiny(output)` trains the plain `resnet_tiny` base
(`uada.models.backbones.build_base_model`) behind the backbone's own input preprocessing
(`ImagePreprocessing(PREPROCESSING)`, as `build_backbone` puts it in front) and under a global
average pooling and a linear classifier, on shapes and patterns in random styles
(`uada.data.pattern_images`). Only the base's weights are written: the file `--weights=FILE`
loads for `--backbone=resnet_tiny`, as an ImageNet file for ResNet-50.

Training images are an endless stream (example indices 0, 1, 2, ...); the held-out images are a
fixed set drawn from indices no training step reaches.

Example:

```python
from uada.runs import backbone_pretraining

weights = "workdirs/demo_pretrained/resnet_tiny.weights.h5"
accuracy = backbone_pretraining.pretrain_resnet_tiny(weights)
```

or from a shell: `python -m uada.pretrain --output=workdirs/demo_pretrained/resnet_tiny.weights.h5`.
"""

import os
import tempfile

import keras
import tensorflow as tf

from uada.data import pattern_images
from uada.models.backbones import PREPROCESSING, build_base_model
from uada.models.preprocessing import ImagePreprocessing

# The default number of training steps (also `python -m uada.pretrain --steps`'s).
DEFAULT_STEPS = 1500
# The held-out images start at this example index, beyond any training step's.
_HELD_OUT_START = 10**9


def pretrain_resnet_tiny(output, *, steps=DEFAULT_STEPS, batch_size=32, learning_rate=2e-3,
                         seed=0, image_size=(64, 64), held_out_images=1000, verbose=1):  # fmt: skip
    """Pretrains `resnet_tiny` on `uada.data.pattern_images`; writes the base's weights.

    Args:
        output: path of the weights file to write; must end in `.weights.h5`. Parent folders are
            created; the file is written to a temporary name in the same folder and renamed, so
            `output` is either the previous file or the complete new one.
        steps: training steps. Defaults to `DEFAULT_STEPS`.
        batch_size: images per step. Defaults to 32.
        learning_rate: Adam's learning rate, cosine-decayed to 0 over `steps`. Defaults to 2e-3.
        seed: seed of the images and of the initialization (`keras.utils.set_random_seed`).
        image_size: `(height, width)` of the images. Defaults to (64, 64).
        held_out_images: size of the fixed held-out set. Defaults to 1000.
        verbose: 1 shows Keras' progress bar, 0 nothing.

    Returns:
        The held-out classification accuracy, a float in [0, 1] (chance: 1 / 10).

    Raises:
        ValueError: `output` does not end in `.weights.h5`, or a number is not positive.
        OSError: `output` cannot be written (the message names it and the cause).
    """
    output = os.fspath(output)
    if not output.endswith(".weights.h5"):
        raise ValueError(f"`output` must end in '.weights.h5'. Received: output={output!r}")
    for name, value in [("steps", steps), ("batch_size", batch_size),
                        ("held_out_images", held_out_images)]:  # fmt: skip
        if value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    image_size = tuple(int(s) for s in image_size)
    keras.utils.set_random_seed(seed)

    base = build_base_model("resnet_tiny", input_shape=(*image_size, 3))
    images = keras.Input((*image_size, 3), name="images")
    x = ImagePreprocessing(PREPROCESSING, name="preprocessing")(images)
    x = base(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    logits = keras.layers.Dense(pattern_images.NUM_CLASSES, name="classifier")(x)
    classifier = keras.Model(images, logits, name="resnet_tiny_pretraining")
    classifier.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate,
                                                                               steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )  # fmt: skip

    held_out = pattern_images.draw_batch(seed, _HELD_OUT_START, held_out_images, image_size)
    classifier.fit(
        _training_stream(seed, batch_size, image_size),
        steps_per_epoch=steps,
        epochs=1,
        shuffle=False,  # a tf.data stream: Keras ignores shuffle for it, with a warning
        verbose=verbose,
    )
    _, accuracy = classifier.evaluate(
        held_out[0].astype("float32"), held_out[1], batch_size=100, verbose=0
    )
    _save_weights_atomically(base, output)
    return float(accuracy)


def _training_stream(seed, batch_size, image_size):
    """Batches of examples 0, 1, 2, ... of the pretraining set, drawn on the fly, endless."""

    def batches():
        start = 0
        while True:
            images, labels = pattern_images.draw_batch(seed, start, batch_size, image_size)
            yield images.astype("float32"), labels
            start += batch_size

    signature = (
        tf.TensorSpec((batch_size, *image_size, 3), tf.float32),
        tf.TensorSpec((batch_size,), tf.int32),
    )
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return dataset.prefetch(2)


def _save_weights_atomically(model, path):
    """`model.save_weights(path)` through a temporary file in the same folder and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    temporary = None
    try:
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(suffix=".weights.h5", dir=folder)
        os.close(handle)
        model.save_weights(temporary, overwrite=True)
        umask = os.umask(0)  # mkstemp makes the file private; give it a normal file's mode
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except OSError as error:
        raise OSError(f"Cannot write the weights file {path!r}: {error}") from error
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)
