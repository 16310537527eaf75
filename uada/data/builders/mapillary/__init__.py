"""The `mapillary` builder; see `mapillary.py`."""
