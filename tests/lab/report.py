"""Results of the chaos scenarios: named timings, one JSON line each, and the table printed
at the end of a test session.

The file is `var/chaos-report.jsonl` under the repository root, or $RTCC_CHAOS_REPORT; the
first record of a session starts it afresh, so after `make chaos` it holds exactly that run
(for CI to keep).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

ROOT = Path(__file__).parents[2]


def report_path() -> Path:
    return Path(os.environ.get("RTCC_CHAOS_REPORT") or ROOT / "var" / "chaos-report.jsonl")


class Measurement(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    test: str
    scenario: str
    metric: str
    value: float
    unit: str
    limit: float | None = None
    at: float

    @property
    def passed(self) -> bool | None:
        return None if self.limit is None else self.value <= self.limit


class ChaosReport:
    """What one test measured; `record` appends to the session's file at once, so a test
    that fails later still leaves its numbers."""

    def __init__(self, path: Path, test: str, session: list[Measurement]) -> None:
        self.path = path
        self.test = test
        self._session = session

    def record(
        self, scenario: str, metric: str, value: float, unit: str = "s", limit: float | None = None
    ) -> Measurement:
        measurement = Measurement(
            test=self.test,
            scenario=scenario,
            metric=metric,
            value=value,
            unit=unit,
            limit=limit,
            at=time.time(),
        )
        if not self._session:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")
        self._session.append(measurement)
        with self.path.open("a") as out:
            out.write(measurement.model_dump_json() + "\n")
        return measurement


def read_report(path: Path) -> list[Measurement]:
    if not path.exists():
        return []
    return [
        Measurement.model_validate(json.loads(line))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def render_table(measurements: list[Measurement]) -> list[str]:
    """One aligned row per measurement: scenario, metric, value, limit, verdict."""
    rows = [("scenario", "metric", "value", "limit", "")]
    for m in measurements:
        limit = "" if m.limit is None else f"<= {m.limit:g} {m.unit}"
        verdict = {None: "", True: "ok", False: "OVER"}[m.passed]
        rows.append((m.scenario, m.metric, f"{m.value:.3g} {m.unit}", limit, verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
