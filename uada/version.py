"""The uada version, in one place (read by setup.cfg and by `uada.__version__`)."""

__version__ = "0.1.0"
