"""The `apolloscape` builder; see `apolloscape.py`."""
