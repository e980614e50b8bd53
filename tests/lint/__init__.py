"""Checks that `make lint` runs besides ruff, mypy and import-linter's own contracts."""
