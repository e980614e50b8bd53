"""Runs unattended on the in-vehicle gateway."""
