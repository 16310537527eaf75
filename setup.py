"""Installs uada. All metadata is declared in setup.cfg."""

from setuptools import setup

setup()
