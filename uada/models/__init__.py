"""The UADA network: backbone R, segmenter S, domain classifier D, losses, schedules, the model.

Public entry points: `build_backbone` (images -> features) and `build_uada_model` (the trainable
`UADAModel` with its inference `segmenter`). Its training step's guards are `step_guard`'s, its
label maps `label_prediction`'s, AdaBN's statistics `adabn`'s.
"""

from uada.models import losses, schedules
from uada.models.backbones import BACKBONES, OUTPUT_STRIDES, build_backbone
from uada.models.heads import (
    build_domain_classifier,
    build_representation,
    build_segmentation_head,
)
from uada.models.label_prediction import predict_labels
from uada.models.preprocessing import ImagePreprocessing
from uada.models.step_guard import NonFiniteLossError, TrainingGuard
from uada.models.uada_model import MODES, UADAModel, build_uada_model

__all__ = [
    "BACKBONES",
    "MODES",
    "OUTPUT_STRIDES",
    "ImagePreprocessing",
    "NonFiniteLossError",
    "TrainingGuard",
    "UADAModel",
    "build_backbone",
    "build_domain_classifier",
    "build_representation",
    "build_segmentation_head",
    "build_uada_model",
    "losses",
    "predict_labels",
    "schedules",
]
