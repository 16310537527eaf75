"""AdaBN (`uada.models.adabn`): adapted moving statistics against numpy, layer by layer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from uada.layers import DomainAgnosticNormalization
from uada.models import adabn


def _tiny_model():
    """1x1 conv -> BN -> ReLU -> [nested: 1x1 conv -> DAN] -> instance norm -> 1x1 conv."""
    inner_input = keras.Input((4, 6, 5))
    x = keras.layers.Conv2D(4, 1, name="inner_conv")(inner_input)
    inner = keras.Model(inner_input, DomainAgnosticNormalization(name="dan")(x), name="inner")
    images = keras.Input((4, 6, 3))
    x = keras.layers.Conv2D(5, 1, name="conv")(images)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = inner(x)
    x = keras.layers.GroupNormalization(groups=-1, name="instance")(x)
    model = keras.Model(images, keras.layers.Conv2D(2, 1, name="out")(x))
    rng = np.random.default_rng(1)
    for layer in (model.get_layer("bn"), inner.get_layer("dan")):
        # Learned scale and offset, and moving statistics that must be replaced.
        layer.set_weights([rng.uniform(0.5, 2.0, w.shape) for w in layer.get_weights()])
    return model, inner


def test_adapted_statistics_equal_numpy_layer_by_layer():
    model, inner = _tiny_model()
    rng = np.random.default_rng(0)
    images = rng.normal(3.0, 2.0, size=(5, 4, 6, 3)).astype(np.float32)
    batches = tf.data.Dataset.from_tensor_slices(images).batch(2)  # 2 + 2 + 1 images

    adapted = adabn.adapt_statistics(model, batches)

    # By hand: the first layer's inputs, then the second's through the *adapted* first layer.
    conv, bn = model.get_layer("conv"), model.get_layer("bn")
    kernel, bias = (w.numpy().astype(np.float64) for w in conv.weights)
    h = images.astype(np.float64) @ kernel[0, 0] + bias
    mean1, var1 = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))  # biased variance
    gamma, beta = (w.numpy().astype(np.float64) for w in (bn.gamma, bn.beta))
    y = np.maximum(gamma * (h - mean1) / np.sqrt(var1 + bn.epsilon) + beta, 0.0)
    kernel2, bias2 = (w.numpy().astype(np.float64) for w in inner.get_layer("inner_conv").weights)
    h2 = y @ kernel2[0, 0] + bias2
    mean2, var2 = h2.mean(axis=(0, 1, 2)), h2.var(axis=(0, 1, 2))

    dan = inner.get_layer("dan")
    np.testing.assert_allclose(bn.moving_mean.numpy(), mean1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), var1, rtol=1e-5)
    np.testing.assert_allclose(dan.moving_mean.numpy(), mean2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dan.moving_variance.numpy(), var2, rtol=1e-5)
    assert list(adapted) == ["bn", "dan"]  # network order; instance norm has no statistics
    # Layers are back to their own momentum and trainability.
    assert bn.trainable and dan.trainable and bn.momentum == 0.99 and dan.momentum == 0.96


def test_adapted_statistics_context_restores_and_max_images():
    model, _ = _tiny_model()
    bn = model.get_layer("bn")
    before = bn.moving_mean.numpy()
    images = np.random.default_rng(0).normal(size=(6, 4, 6, 3)).astype(np.float32)
    with adabn.adapted_statistics(model, [images[:4], images[4:]], max_images=3) as adapted:
        # Only the first 3 images count.
        first3 = adabn.adapt_statistics(model, [images[:3]])
        np.testing.assert_allclose(adapted["bn"][0], first3["bn"][0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before)
    with pytest.raises(ValueError, match="same height and width"):
        adabn.adapt_statistics(model, [images[:2], np.zeros((1, 2, 6, 3), np.float32)])
