"""pytest glue for the fault lab: the `fault_lab` and `chaos_report` fixtures, the `chaos`
marker and the session's table of chaos results.

A conftest makes them its own with

    from tests.lab.fixtures import chaos_report, fault_lab  # fixtures
    from tests.lab.fixtures import pytest_configure, pytest_terminal_summary  # hooks
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab.lab import FaultLab
from tests.lab.netns import unavailable
from tests.lab.report import ChaosReport, Measurement, render_table, report_path

SESSION_RESULTS = pytest.StashKey[list[Measurement]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: a fault-lab scenario (network namespaces, root); run by make chaos"
    )
    config.stash[SESSION_RESULTS] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    results = terminalreporter.config.stash.get(SESSION_RESULTS, [])
    if not results:
        return
    terminalreporter.write_sep("=", "chaos results")
    for line in render_table(results):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(also in {report_path()})")


@pytest.fixture
def fault_lab() -> Iterator[FaultLab]:
    """A vehicle, link and core namespace with the link emulator running; everything it
    built or started is gone after the test. Skips where namespaces cannot be made."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    with FaultLab() as lab:
        yield lab


@pytest.fixture
def chaos_report(request: pytest.FixtureRequest) -> ChaosReport:
    """`chaos_report.record(scenario, metric, value, unit, limit=...)`: kept in the report
    file and shown in the table at the end of the session."""
    return ChaosReport(report_path(), request.node.nodeid, request.config.stash[SESSION_RESULTS])
