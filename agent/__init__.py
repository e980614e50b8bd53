"""Runs unattended on the in-vehicle gateway."""

__version__ = "0.1.0"
