"""The `cityscapes` builder; see `cityscapes.py`."""
