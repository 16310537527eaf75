"""The methods' models: their losses in the step, where gradients go, the teacher, the registry.

Most tests read the shared single-device step of each method (`method_steps` in conftest); the
others fit the tiny model once or twice.
"""

import dataclasses
import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import build_tiny_method, fit_steps, global_batch, tiny_examples

from uada import config as config_lib
from uada.methods import METHODS
from uada.models import losses
from uada.names import METHOD_MODES

# float32 against float64 over a few thousand terms of one loss: a mean of N terms is within
# N * 2**-24 of the exact one relative to the sum of magnitudes (Higham, Sec. 4.2); N = 2048
# target pixels (x 19 classes for the entropy's sum): 2.4e-3 at worst, 1e-5 in practice
# (errors of random sign); a loss on the wrong rows or with the wrong weight is off by far more.
RTOL = 1e-5


def _bce(logits, label):
    return np.maximum(logits, 0) - logits * label + np.log1p(np.exp(-np.abs(logits)))


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _reference_loss(mode, model, logits, images, num_source):
    """The method's weighted target loss from `logits` `[N, H, W, C]` in numpy (float64); the
    networks it needs (D, the teacher) are run by TensorFlow."""
    target = logits[num_source:].astype(np.float64)
    p = _softmax(target)
    log_c = np.log(target.shape[-1])
    if mode == "minent":
        return model.lambda_ent * (-(p * np.log(p)).sum(-1) / log_c).mean()
    if mode in ("advent", "adaptsegnet"):
        maps = -p * np.log(p) / log_c if mode == "advent" else p
        d = model.discriminator(maps.astype("float32")).numpy().astype(np.float64)
        return model.lambda_adv * _bce(d, 0).mean()
    teacher = model.teacher(images[num_source:], training=False).numpy().astype(np.float64)
    teacher_p = _softmax(teacher)
    labels = teacher_p.argmax(-1)
    kept = (teacher_p.max(-1) >= model.pseudo_label_threshold).mean()
    assert 0 < kept < 1, kept  # the threshold masks some pixels and keeps others
    ce = -np.log(np.take_along_axis(p, labels[..., None], -1)[..., 0])
    return kept * ce.mean()


@pytest.mark.parametrize("mode", METHOD_MODES)
def test_the_method_loss_equals_its_reference_and_reaches_the_target_logits_only(
    mode, method_steps, monkeypatch
):
    model = method_steps[mode].model
    if mode == "self_training":  # a threshold the tiny teacher's pixels fall on both sides of
        monkeypatch.setattr(model, "pseudo_label_threshold", 0.2)
    source, _, target = method_steps[mode].examples
    images = np.concatenate([source, target]).astype("float32")
    rng = np.random.default_rng(3)
    # Random logits, confident on the source rows, less so on the target rows.
    logits = rng.normal(size=(4, *images.shape[1:3], 19)) * np.reshape([10, 10, 1, 1], [4, 1, 1, 1])
    logits = tf.Variable(logits.astype("float32"))
    with tf.GradientTape() as tape:
        loss, metrics = model._target_loss(logits, images, 2)
    expected = _reference_loss(mode, model, logits.numpy(), images, 2)
    assert float(loss) == pytest.approx(expected, rel=RTOL)
    # A loss of the source rows, or of both domains, would be another number.
    wrong = _reference_loss(mode, model, logits.numpy()[::-1], images[::-1], 2)
    assert abs(wrong - expected) > 10 * RTOL * abs(expected), (wrong, expected)
    grad = tape.gradient(loss, logits).numpy()
    assert np.all(grad[:2] == 0), "the method's loss reaches the source logits"
    assert np.all(np.isfinite(grad[2:])) and np.abs(grad[2:]).sum() > 0
    assert set(metrics) <= set(model.method_metric_names)


@pytest.mark.parametrize("mode", METHOD_MODES)
def test_the_step_minimizes_l_seg_plus_l_reg_plus_the_weighted_method_loss(mode, method_steps):
    step = method_steps[mode]
    model, history = step.model, step.history
    index = {id(v): i for i, v in enumerate(model.variables)}
    l2 = model.l2_regularization * sum(
        np.sum(np.float64(step.initial[index[id(w)]]) ** 2) for w in model._l2_weights
    )
    weighted = {
        "minent": lambda h: model.lambda_ent * h["entropy_loss"][0],
        "advent": lambda h: model.lambda_adv * h["adversarial_loss"][0],
        "adaptsegnet": lambda h: model.lambda_adv * h["adversarial_loss"][0],
        "self_training": lambda h: h["pseudo_label_loss"][0],
    }[mode](history)
    assert weighted > 0
    assert history["loss"][0] == pytest.approx(history["seg_loss"][0] + l2 + weighted, rel=1e-6)
    assert history["skipped_steps"] == [0.0]
    assert set(history) == {*model.log_names}


def test_the_teacher_gets_no_gradient_only_the_average_of_the_student(method_steps):
    step = method_steps["self_training"]
    model = step.model
    index = {id(v): i for i, v in enumerate(model.variables)}
    trainable = {id(v) for v in model.trainable_variables}
    optimized = {id(v) for v in model.seg_optimizer.variables}
    for teacher, student in model._teacher_pairs:
        assert id(teacher) not in trainable and id(teacher) not in optimized
        t, s = index[id(teacher)], index[id(student)]
        np.testing.assert_array_equal(step.initial[t], step.initial[s])  # a copy at first
        # After the first applied step: a = min(1 - 1/2, 0.99) = 0.5, in float32 (exact halves).
        expected = np.float32(0.5) * step.initial[t] + np.float32(0.5) * step.after[s]
        np.testing.assert_array_equal(step.after[t], expected, err_msg=teacher.path)
    assert not model.teacher.trainable_variables


def _sgd(learning_rate):
    return keras.optimizers.SGD(learning_rate, momentum=0.9)


@pytest.mark.parametrize("frozen", ["segmentation", "discriminator"])
def test_each_update_changes_only_its_own_variables(frozen):
    # With one optimizer's learning rate at 0, whatever moves was moved by the other update:
    # the discriminator's step never moves R and S, R and S's step never moves D.
    model = build_tiny_method("advent")
    model.compile(
        seg_optimizer=_sgd(0.0 if frozen == "segmentation" else 0.01),
        domain_optimizer=keras.optimizers.Adam(0.0 if frozen == "discriminator" else 1e-4),
    )
    segmentation = model.generator_variables
    discriminator = model.domain_variables
    before = [v.numpy().copy() for v in segmentation + discriminator]
    fit_steps(model, global_batch(*tiny_examples(2)))
    after = [v.numpy() for v in segmentation + discriminator]
    changed = [not np.array_equal(b, a) for b, a in zip(before, after, strict=True)]
    frozen_part = slice(0, len(segmentation)) if frozen == "segmentation" else slice(
        len(segmentation), None
    )  # fmt: skip
    moving_part = slice(len(segmentation), None) if frozen == "segmentation" else slice(
        0, len(segmentation)
    )  # fmt: skip
    assert not any(changed[frozen_part])
    assert all(changed[moving_part])


def test_a_skipped_step_leaves_the_teacher_as_it_was(monkeypatch):
    # (A discriminator's update taken back: the shared `_end_step`, tested with UADA's D in
    # tests/models/test_uada_model.py.)
    model = build_tiny_method("self_training")
    model.compile()
    state = model.variables + list(model.seg_optimizer.variables)  # the teacher's included
    before = [v.numpy().copy() for v in state]
    monkeypatch.setattr(losses, "l2_regularization", lambda *args: tf.constant(float("inf")))
    history = fit_steps(model, global_batch(*tiny_examples(2)))
    assert history["skipped_steps"] == [1.0]
    changed = [
        v.path for v, b in zip(state, before, strict=True) if not np.array_equal(v.numpy(), b)
    ]
    assert sorted(changed) == ["consecutive_skips", "skipped_steps"]


def test_the_registry_is_the_closed_set_of_modes_and_its_defaults_are_the_configs():
    assert tuple(METHODS) == METHOD_MODES
    fields = {field.name: field.default for field in dataclasses.fields(config_lib.Config)}
    for mode, model_class in METHODS.items():
        defaults = {
            name: parameter.default
            for name, parameter in inspect.signature(model_class.__init__).parameters.items()
        }
        for name in model_class.hyperparameters:
            assert fields[name] == defaults[name], (mode, name)


@pytest.mark.parametrize("mode", ["advent", "self_training"])  # the two kinds of extra parts
def test_get_config_round_trip(mode, method_steps):
    model = method_steps[mode].model
    clone = type(model).from_config(model.get_config())
    assert clone.count_params() == model.count_params()
    for name in (*model.hyperparameters, "gradient_clip", "num_classes"):
        assert getattr(clone, name) == getattr(model, name)


@pytest.mark.parametrize(
    "mode, kwargs, match",
    [
        ("minent", {"lambda_ent": -0.1}, "lambda_ent=-0.1"),
        ("advent", {"lambda_adv": -1.0}, "lambda_adv=-1.0"),
        ("adaptsegnet", {"discriminator_learning_rate": -1.0}, "discriminator_learning_rate=-1.0"),
        ("self_training", {"teacher_ema": 1.5}, "teacher_ema=1.5"),
        ("self_training", {"pseudo_label_threshold": 2.0}, "pseudo_label_threshold=2.0"),
        ("minent", {"gradient_clip": -1.0}, "gradient_clip=-1.0"),
    ],
)
def test_invalid_method_arguments_are_named(mode, kwargs, match, method_steps):
    model = method_steps[mode].model
    parts = [getattr(model, name) for name in model.parts]
    with pytest.raises(ValueError, match=match):
        type(model)(*parts, **kwargs)


def test_a_teacher_of_another_architecture_is_refused(method_steps):
    model = method_steps["self_training"].model
    with pytest.raises(ValueError, match="architecture of the student"):
        type(model)(model.representation, model.segmentation_head, model.representation)
