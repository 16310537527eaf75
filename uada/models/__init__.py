"""The UADA network: backbone R, segmenter S, domain classifier D, losses, schedules, the model.

Public entry points: `build_backbone` (images -> features), `build_segmentation_network` (R and
S) and `build_uada_model` (the trainable `UADAModel` with its inference `segmenter`).
`AdaptationModel` is the frame `UADAModel` and the other methods (`uada.methods`) train in; its
step guards are `step_guard`'s, its label maps `label_prediction`'s, AdaBN's statistics
`adabn`'s.
"""

from uada.models import losses, schedules
from uada.models.adaptation_model import AdaptationModel, build_segmentation_network
from uada.models.backbones import BACKBONES, OUTPUT_STRIDES, build_backbone
from uada.models.heads import (
    build_domain_classifier,
    build_representation,
    build_segmentation_head,
)
from uada.models.label_prediction import predict_labels
from uada.models.preprocessing import ImagePreprocessing
from uada.models.step_guard import NonFiniteLossError, TrainingGuard
from uada.models.uada_model import UADA_MODES, UADAModel, build_uada_model

__all__ = [
    "BACKBONES",
    "OUTPUT_STRIDES",
    "UADA_MODES",
    "AdaptationModel",
    "ImagePreprocessing",
    "NonFiniteLossError",
    "TrainingGuard",
    "UADAModel",
    "build_backbone",
    "build_domain_classifier",
    "build_segmentation_network",
    "build_representation",
    "build_segmentation_head",
    "build_uada_model",
    "losses",
    "predict_labels",
    "schedules",
]
