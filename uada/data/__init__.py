"""Datasets, label maps and input pipelines of uada."""

from uada.data.labels import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES, PALETTE, colorize, lookup_table

__all__ = ["CLASS_NAMES", "IGNORE_LABEL", "NUM_CLASSES", "PALETTE", "colorize", "lookup_table"]
