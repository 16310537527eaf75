"""The `folder` builder; see `folder.py`."""
