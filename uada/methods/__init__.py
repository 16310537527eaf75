"""The field's adaptation methods beside UADA, one module each, in the frame UADA trains in.

| mode | model (module) | the method |
|---|---|---|
| `minent` | `MinEntModel` (`minent`) | ADVENT's entropy minimization of the target predictions |
| `advent` | `AdvEntModel` (`advent`) | ADVENT's adversarial training on self-information maps |
| `adaptsegnet` | `AdaptSegNetModel` (`adaptsegnet`) | AdaptSegNet's output-space adversarial |
| `self_training` | `SelfTrainingModel` (`self_training`) | a mean teacher's pseudo-labels |

AdaptSegNet is trained at a single output level; the self-training is DACS's and DAFormer's
without their image mixing.

Every method trains R and S of `uada.models` (any normalization of `uada.layers`, DAN in its
experiment file) with the shared step of `method_model.MethodModel`: L_seg on the source, L_reg,
the method's loss on the target outputs, the step guards, the schedules and the trainer. Their
shared parts are `entropy` (ADVENT's entropy and self-information maps) and
`output_space_discriminator` (the discriminator of AdaptSegNet and ADVENT, its losses and
adversarial step). docs/FIDELITY.md, *Other methods*, compares each with its original.

A fifth method is a module with a `MethodModel` subclass, its entry in `METHODS`, its mode in
`uada.names.METHOD_MODES` and its hyperparameters as `uada.config.Config` fields.
"""

import functools

from uada.methods.adaptsegnet import AdaptSegNetModel
from uada.methods.advent import AdvEntModel
from uada.methods.minent import MinEntModel
from uada.methods.self_training import SelfTrainingModel
from uada.models.adaptation_model import build_segmentation_network

# Mode (`uada.names.METHOD_MODES`) -> the method's model class (its `hyperparameters` name the
# Config fields it reads).
METHODS = {
    "minent": MinEntModel,
    "advent": AdvEntModel,
    "adaptsegnet": AdaptSegNetModel,
    "self_training": SelfTrainingModel,
}

__all__ = [
    "METHODS",
    "AdaptSegNetModel",
    "AdvEntModel",
    "MinEntModel",
    "SelfTrainingModel",
    "build_method_model",
    "hyperparameters",
]


def build_method_model(mode, backbone="resnet50", norm="dan", output_stride=8, weights=None,
                       image_size=(384, 768), num_classes=19, *, synchronized=None,
                       dan_target_epsilon=None, **kwargs):  # fmt: skip
    """Builds the model of a method: R and S (`build_segmentation_network`) and its own parts.

    Args:
        mode: one of `METHODS`.
        backbone, norm, output_stride, weights, image_size, num_classes, synchronized,
            dan_target_epsilon: R and S's, as in `uada.models.build_uada_model`.
        **kwargs: the method model's other arguments: its `hyperparameters` and those of
            `uada.methods.method_model.MethodModel` (`steps_per_epoch`, `l2_regularization`,
            `gradient_clip`, `max_consecutive_skips`, `seed`, `name`).

    Returns:
        The method's model (a `MethodModel`), not compiled.
    """
    if mode not in METHODS:
        raise ValueError(f"`mode` must be one of {tuple(METHODS)}. Received: mode={mode!r}")
    network = functools.partial(
        build_segmentation_network, backbone, norm, output_stride, image_size=tuple(image_size),
        num_classes=num_classes, synchronized=synchronized, dan_target_epsilon=dan_target_epsilon,
    )  # fmt: skip
    representation, segmentation_head = network(weights=weights)
    kwargs.setdefault("name", mode)
    return METHODS[mode].build(
        representation, segmentation_head, network=network, num_classes=num_classes, **kwargs
    )


def hyperparameters(config):
    """`{name: value}` of the method hyperparameters of `config` (a `uada.config.Config`) that
    its mode reads (none for the modes of `uada.models.UADAModel`)."""
    model = METHODS.get(config.mode)
    return {} if model is None else {name: getattr(config, name) for name in model.hyperparameters}
