"""The `gta5` builder; see `gta5.py`."""
