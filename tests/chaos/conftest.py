"""Chaos scenarios: real processes in the fault lab's namespaces, faults on the link, timings
in the chaos report. They need root and iproute2, take seconds to minutes each, and run
with `make chaos` (pytest -m chaos tests/chaos), or when named on the command line; a plain
`pytest` run leaves them out."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.fixtures import (
    chaos_report,
    fault_lab,
    pytest_configure,
    pytest_terminal_summary,
)

__all__ = ["chaos_report", "fault_lab", "pytest_configure", "pytest_terminal_summary"]

HERE = Path(__file__).parent


def _named(config: pytest.Config) -> bool:
    base = config.invocation_params.dir
    return any((base / arg.split("::")[0]).resolve().is_relative_to(HERE) for arg in config.args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "chaos" in (config.option.markexpr or "") or _named(config):
        return
    skip = pytest.mark.skip(reason="chaos scenario: run with make chaos (pytest -m chaos)")
    for item in items:
        if item.get_closest_marker("chaos") is not None:
            item.add_marker(skip)
