"""Tests of `UADAModel`'s training step on tiny configurations (resnet_tiny, 64x128 inputs)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from uada.layers import domain_split
from uada.models import NonFiniteLossError, UADAModel, build_uada_model, losses

SIZE = (64, 128)


def _batch(seed=0, num_source=2, num_target=2, mode="uada"):
    rng = np.random.default_rng(seed)
    source = rng.uniform(0, 255, (num_source, *SIZE, 3)).astype("float32")
    target = rng.uniform(0, 255, (num_target, *SIZE, 3)).astype("float32")
    labels = rng.integers(0, 19, (num_source, *SIZE)).astype("int32")
    labels[:, :8] = 255
    if mode == "source_only":
        return source, labels
    return (source, labels), target


def _model(mode="uada", norm="dan", **kwargs):
    kwargs = {"steps_per_epoch": 1, "ramp_epochs": 0, **kwargs}
    return build_uada_model(mode, "resnet_tiny", norm, image_size=SIZE, **kwargs)


def _fit(model, batch, steps=1, **kwargs):
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    return model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False, **kwargs)


def _values(variables):
    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


def _assert_all_equal(before, after, variables):
    for b, a, v in zip(before, after, variables, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=v.path)


def _assert_all_changed(before, after, variables):
    for b, a, v in zip(before, after, variables, strict=True):
        assert not np.array_equal(a, b), f"{v.path} did not change"


def _sgd(learning_rate):
    return keras.optimizers.SGD(learning_rate, momentum=0.9)


@pytest.mark.parametrize("frozen", ["generator", "domain"])
def test_each_update_changes_only_its_own_variables(frozen):
    # With one optimizer's learning rate at 0, whatever moves was moved by the other update.
    model = _model()
    model.compile(
        seg_optimizer=_sgd(0.0 if frozen == "generator" else 0.01),
        domain_optimizer=_sgd(0.0 if frozen == "domain" else 0.01),
    )
    d_vars = model.domain_classifier.trainable_variables
    g_vars = model.representation.trainable_variables + model.segmentation_head.trainable_variables
    d_before, g_before = _values(d_vars), _values(g_vars)
    _fit(model, _batch())
    if frozen == "generator":  # the D step alone ran
        _assert_all_equal(g_before, _values(g_vars), g_vars)
        _assert_all_changed(d_before, _values(d_vars), d_vars)
    else:
        _assert_all_equal(d_before, _values(d_vars), d_vars)
        _assert_all_changed(g_before, _values(g_vars), g_vars)
    assert {id(v) for v in model.domain_optimizer.variables} & {id(v) for v in g_vars} == set()


def _applied_update(model, batch):
    """`{variable path: after - before}` of one real training step (`fit`)."""
    variables = model.trainable_variables
    before = _values(variables)
    _fit(model, batch)
    return {v.path: a - b for v, a, b in zip(variables, _values(variables), before, strict=True)}


def test_uada_every_trainable_variable_gets_a_finite_nonzero_gradient():
    # Plain SGD: each variable moves by -learning_rate * its (clipped) gradient of the step.
    model = _model()
    model.compile(
        seg_optimizer=keras.optimizers.SGD(1.0), domain_optimizer=keras.optimizers.SGD(1.0)
    )
    update = _applied_update(model, _batch())
    assert model.skipped_steps.numpy() == 0
    assert len(model.domain_classifier.trainable_variables) == 8
    assert len(update) == len(
        model.representation.trainable_variables
        + model.segmentation_head.trainable_variables
        + model.domain_classifier.trainable_variables
    )
    for path, delta in update.items():
        assert np.all(np.isfinite(delta)), path
        assert np.any(delta != 0), path


def _objectives(model, batch):
    """The step's two objectives written with the model's parts and `losses` (without the
    instance noise and L_reg): G's `L_seg + lambda * L_conf` and D's `L_dom`, on `[x_s ; x_t]`."""
    (source, labels), target = batch
    num_source = len(source)
    with domain_split(num_source):
        z = model.representation(np.concatenate([source, target]), training=True)
    with domain_split(None):
        logits = model.segmentation_head(z[:num_source], training=True)
    seg_loss = losses.segmentation_loss(labels, logits, num_classes=model.num_classes)
    conf_loss = losses.confusion_loss(model.domain_classifier(z, training=True), num_source)
    d_loss = losses.domain_loss(
        model.domain_classifier(tf.stop_gradient(z), training=True), num_source
    )
    return seg_loss + model.lambda_conf * conf_loss, d_loss


@pytest.mark.parametrize("norm", ["dan", "batch"])
def test_every_variable_with_a_gradient_moves_the_losses(norm):
    """A variable with a gradient but no effect on the step's losses drifts under the updates with
    nothing to hold it (as a conv bias before DAN would): with a large lambda, every variable gets a
    gradient from the losses of the data (L_reg aside), and perturbing it along its gradient's
    sign must change the loss its gradient came from."""
    model = _model(norm=norm, lambda_conf=10.0)
    batch = _batch()
    g_variables = (
        model.representation.trainable_variables + model.segmentation_head.trainable_variables
    )
    d_variables = model.domain_classifier.trainable_variables
    # One trace for the ~70 evaluations below (each reads the variables as they are then).
    objectives = tf.function(lambda: _objectives(model, batch), autograph=False)
    with tf.GradientTape(persistent=True) as tape:
        base = objectives()
    checked = 0
    for index, variables in ((0, g_variables), (1, d_variables)):
        for variable, grad in zip(variables, tape.gradient(base[index], variables), strict=True):
            grad = keras.ops.convert_to_numpy(grad)
            assert np.any(grad), f"{variable.path} has no gradient"
            original = keras.ops.convert_to_numpy(variable).copy()
            variable.assign(original + 0.05 * np.sign(grad))
            changed = float(objectives()[index])
            variable.assign(original)
            # Real parameters move the loss by > 1e-3 here; a forward-dead one by float noise.
            assert abs(changed - float(base[index])) > 1e-5, f"{variable.path} has no effect"
            checked += 1
    assert checked == len(model.trainable_variables)


def test_source_only_has_no_domain_classifier_and_never_sees_target_images():
    batch = _batch(mode="source_only")
    moving = []
    for data in (batch, (batch, np.full((2, *SIZE, 3), np.nan, "float32"))):
        keras.utils.set_random_seed(0)
        model = _model("source_only")
        model.compile()
        assert model.domain_classifier is None and model.domain_optimizer is None
        history = _fit(model, data)
        assert history.history["skipped_steps"] == [0.0]
        assert set(history.history) == {"loss", "seg_loss", "lr", "skipped_steps"}
        moving.append(_values(model.representation.non_trainable_variables))
    _assert_all_equal(moving[0], moving[1], model.representation.non_trainable_variables)


def _invalid_label_fit(value):
    """Fits one step on labels holding `value`; returns the model and the paths that changed."""
    model = _model()
    model.compile()
    (source, labels), target = _batch()
    labels[1, 5, 7] = value
    before = _values(model.variables)
    with pytest.raises(tf.errors.InvalidArgumentError, match="source_labels"):
        _fit(model, ((source, labels), target))
    return model, _changed_paths(model.variables, before)


def _changed_paths(variables, before):
    after = _values(variables)
    return sorted(v.path for v, b, a in zip(variables, before, after, strict=True)
                  if not np.array_equal(b, a))  # fmt: skip


def test_invalid_labels_raise_before_any_update():
    _, changed = _invalid_label_fit(19)
    # No weight, moving statistic or optimizer state moved (at most the step counters).
    assert set(changed) <= {"consecutive_skips", "invalid_label_steps", "skipped_steps"}


def test_invalid_labels_stop_training_where_assertions_are_compiled_away(monkeypatch):
    # Under XLA `tf.debugging.Assert` is a no-op: the count alone must skip the step and stop.
    count_only = losses.invalid_label_count
    monkeypatch.setattr(
        losses, "assert_valid_labels", lambda labels, name, **kw: count_only(labels)
    )
    model, changed = _invalid_label_fit(200)
    assert changed == ["consecutive_skips", "invalid_label_steps", "skipped_steps"]
    assert int(model.skipped_steps.numpy()) == 1


@pytest.mark.parametrize("norm, unchanged", [("dan", True), ("batch", False)])
def test_dan_moving_statistics_never_see_the_target_images(norm, unchanged):
    model = _model(norm=norm)
    model.compile()
    initial = model.get_weights()
    stateful = model.representation.non_trainable_variables
    stateful += model.segmentation_head.non_trainable_variables
    moving = []
    for target_seed in (1, 2):
        model.set_weights(initial)
        (source, labels), _ = _batch(0)
        _, target = _batch(target_seed)
        _fit(model, ((source, labels), target))
        moving.append(_values(stateful))
    if unchanged:
        _assert_all_equal(moving[0], moving[1], stateful)
    else:  # the test can fail: plain batch norm's statistics do see the target images
        assert not all(np.array_equal(a, b) for a, b in zip(*moving, strict=True))


def test_gradient_clip_defaults_to_the_original_adversarial_updates_only():
    assert _model("uada").gradient_clip == 5.0
    assert _model("multi_domain").gradient_clip is None
    assert _model("source_only").gradient_clip is None


def test_uada_with_lambda_zero_updates_like_multi_domain():
    keras.utils.set_random_seed(3)
    uada = _model("uada", lambda_conf=0.0)
    multi = _model("multi_domain", gradient_clip=5.0)  # the clip uada always has
    multi.representation.set_weights(uada.representation.get_weights())
    multi.segmentation_head.set_weights(uada.segmentation_head.get_weights())
    for model in (uada, multi):
        model.compile()
        _fit(model, _batch(), steps=2)
    for part in ("representation", "segmentation_head"):
        for a, b in zip(getattr(uada, part).weights, getattr(multi, part).weights, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_confusion_loss_reaches_r_only_after_the_ramp():
    updates = {}
    for ramp_epochs in (0, 1):
        keras.utils.set_random_seed(0)
        model = _model(lambda_conf=1.0, ramp_epochs=ramp_epochs, steps_per_epoch=5)
        model.compile(seg_optimizer=_sgd(0.01), domain_optimizer=_sgd(0.01))
        updates[ramp_epochs] = _applied_update(model, _batch())
    path = "extension_conv/kernel"
    assert not np.allclose(updates[0][path], updates[1][path])
    # D's update does not depend on the ramp.
    path = model.domain_classifier.trainable_variables[0].path
    np.testing.assert_allclose(updates[0][path], updates[1][path], rtol=1e-5, atol=1e-9)


def test_fit_lowers_the_segmentation_loss():
    # Learnable synthetic data: the class is whether the red channel is bright.
    rng = np.random.default_rng(0)
    blocks = rng.uniform(0, 255, (4, 8, 16, 3)).astype("float32")
    images = np.repeat(np.repeat(blocks, 8, axis=1), 8, axis=2)
    labels = (images[..., 0] > 127).astype("int32")
    model = _model(gradient_clip=None, lambda_conf=0.01)
    model.compile(learning_rate=0.02)
    history = model.fit(
        tf.data.Dataset.from_tensors(((images[:2], labels[:2]), images[2:])).repeat(),
        steps_per_epoch=4,
        epochs=3,
        verbose=0,
        shuffle=False,
    ).history
    assert history["seg_loss"][2] < history["seg_loss"][0] - 0.1
    assert history["skipped_steps"] == [0.0, 0.0, 0.0]
    assert {"domain_loss", "confusion_loss", "domain_accuracy", "lr", "sigma"} <= set(history)


def test_a_nan_step_is_skipped_and_counted_then_training_stops():
    model = _model(max_consecutive_skips=3)
    model.compile()
    (source, labels), target = _batch()
    source[0, 10, 10, 0] = np.nan
    before = _values(model.variables)
    history = _fit(model, ((source, labels), target), steps=2)
    assert history.history["skipped_steps"] == [2.0]
    # Nothing else moved: no update, and the forward pass's moving statistics were restored.
    assert _changed_paths(model.variables, before) == ["consecutive_skips", "skipped_steps"]
    assert int(model.seg_optimizer.iterations.numpy()) == 0
    with pytest.raises(NonFiniteLossError, match="max_consecutive_skips=3"):
        _fit(model, ((source, labels), target), steps=5)
    # A finite step resets the consecutive count.
    history = _fit(model, _batch(), steps=1)
    assert int(model._consecutive_skips.numpy()) == 0


def test_l2_reaches_every_conv_kernel_and_the_two_logit_biases():
    # The original's classifier scope regularizes the logits' and their upsampling's biases too.
    model = _model()
    head = model.segmentation_head
    rng = np.random.default_rng(0)
    for name in ("logits_conv", "logits_upsample"):
        bias = head.get_layer(name).bias
        bias.assign(rng.uniform(1, 2, bias.shape))  # zero at init: make them count
    layers = [layer for part in (model.representation.layers[1], model.representation, head)
              for layer in part.layers]  # fmt: skip
    convs = keras.layers.Conv2D | keras.layers.Conv2DTranspose
    kernels = [layer.kernel.numpy() for layer in layers if isinstance(layer, convs)]
    assert len(kernels) == 17 + 1 + 3  # resnet_tiny, the extension, S
    biases = [head.get_layer(name).bias.numpy() for name in ("logits_conv", "logits_upsample")]
    expected = 8.5e-5 * sum(np.sum(np.float64(w) ** 2) for w in kernels + biases)
    got = float(losses.l2_regularization(model._l2_weights, model.l2_regularization))
    assert got == pytest.approx(expected, rel=1e-5)  # float32 sums of <= 1e5 squares
    assert 8.5e-5 * sum(np.sum(b**2) for b in biases) > 1e-5 * expected  # the biases count


def test_a_g_step_skipped_after_an_applied_d_step_takes_the_d_update_back(monkeypatch):
    # The D step is finite and applied first; the G objective is then made non-finite (its L2
    # term). Skipping G alone would leave D's update and D's iteration: D's clock (and the noise
    # schedule that counts D + G steps) would run ahead of G's.
    model = _model()
    model.compile()
    optimizers = (model.seg_optimizer, model.domain_optimizer)
    state = model.variables + [v for o in optimizers for v in o.variables]
    before = _values(state)
    monkeypatch.setattr(losses, "l2_regularization", lambda *args: tf.constant(float("inf")))
    history = _fit(model, _batch())
    assert history.history["skipped_steps"] == [1.0]
    assert _changed_paths(state, before) == ["consecutive_skips", "skipped_steps"]
    assert [int(o.iterations.numpy()) for o in optimizers] == [0, 0]
    domain_loss = {metric.name: metric for metric in model.metrics}["domain_loss"]
    assert domain_loss.count.numpy() == 0  # the skipped step's D loss is not logged


def test_segmenter_takes_images_only_and_round_trips_through_keras_file(tmp_path):
    model = _model()
    images = _batch(5)[1]
    assert len(model.segmenter.inputs) == 1
    logits = keras.ops.convert_to_numpy(model.segmenter(images))
    assert logits.shape == (2, *SIZE, 19)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(images)), logits)
    path = tmp_path / "segmenter.keras"
    model.segmenter.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(images)), logits, atol=1e-5)
    np.testing.assert_array_equal(model.predict_labels(images), logits.argmax(-1))


def test_get_config_round_trip():
    model = _model("multi_domain", lambda_conf=0.003, gradient_clip=2.0)
    clone = UADAModel.from_config(model.get_config())
    assert clone.get_config()["gradient_clip"] == 2.0
    assert clone.mode == "multi_domain" and clone.domain_classifier is None
    assert clone.count_params() == model.count_params()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "adversarial"}, "mode='adversarial'"),
        ({"gradient_clip": -1.0}, "gradient_clip=-1.0"),
        ({"max_consecutive_skips": 0}, "max_consecutive_skips=0"),
        ({"lambda_conf": -0.1}, "lambda_conf=-0.1"),
    ],
)
def test_invalid_model_arguments_are_named(kwargs, match, tiny_parts):
    with pytest.raises(ValueError, match=match):
        UADAModel(*tiny_parts, **kwargs)


@pytest.fixture(scope="module")
def tiny_parts():
    model = _model()
    return model.representation, model.segmentation_head, model.domain_classifier


def test_a_dynamic_source_batch_size_is_a_clear_error():
    model = _model()
    model.compile()
    (source, labels), target = _batch()
    dataset = tf.data.Dataset.from_tensor_slices(((source, labels), target)).batch(2)
    with pytest.raises(ValueError, match="drop_remainder=True"):
        model.fit(dataset, epochs=1, verbose=0)
