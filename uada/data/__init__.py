"""The data of uada: label maps and classes (`labels`), dataset builders (`builders`), the cards
of folder datasets (`folder_card`), where each domain's data is (`domains`), the procedural demo
domains (`demo_generator`) and pretraining images (`pattern_images`), augmentation (`augment`)
and the input pipelines (`pipeline`)."""

from uada.data.labels import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES, PALETTE, colorize, lookup_table

__all__ = ["CLASS_NAMES", "IGNORE_LABEL", "NUM_CLASSES", "PALETTE", "colorize", "lookup_table"]
