"""A gateway installs and loads only the agent: `rtcc agent` and `rtcc doctor`, run for real,
import nothing of the center or its web stack, and the bare distribution (`rtcc[agent]`)
does not depend on it."""

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from tests.helpers import ROOT
from tests.integration.agent_process import agent_process

# The center's parts and what only the center installs (rtcc[center]).
CENTER_ONLY = (
    "central",
    "fastapi",
    "starlette",
    "uvicorn",
    "prometheus_client",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "argon2",
    "pyotp",
    "qrcode",
)


def imported(stderr: str) -> set[str]:
    """Module names from `python -X importtime`'s report, one line per import."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def center_modules(names: set[str]) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in CENTER_ONLY)


def test_rtcc_agent_imports_nothing_of_the_center(tmp_path: Path, broker_url: str) -> None:
    env = {
        **os.environ,
        "RTCC_UNIT_ID": "LEAN-1",
        "RTCC_MQTT_URL": broker_url,
        "RTCC_DATA_DIR": str(tmp_path),
        "RTCC_LOG__FORMAT": "json",
        # Health on, evidence on (the default): every part a gateway runs is loaded.
        "RTCC_HEALTH__PORT": "0",
    }
    with agent_process(env, "-X", "importtime") as agent:
        deadline = time.monotonic() + 60
        while agent.health_url() is None:
            assert agent.process.poll() is None, "".join(agent.lines[-20:])
            assert time.monotonic() < deadline, "agent not up within 60 s"
            time.sleep(0.05)
        agent.process.send_signal(signal.SIGTERM)
        assert agent.process.wait(timeout=30) == 0
    names = imported("".join(agent.lines))
    assert {"agent.service", "agent.evidence.manager", "agent.health_server"} <= names
    assert center_modules(names) == []


def test_rtcc_doctor_imports_nothing_of_the_center(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RTCC_")}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "rtcc", "doctor", "--json"],
        cwd=ROOT,
        env={**clean, "RTCC_UNIT_ID": "LEAN-1", "RTCC_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    names = imported(done.stderr)
    assert "agent.doctor_checks" in names
    assert center_modules(names) == []


def test_the_bare_distribution_depends_on_nothing_of_the_center() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for deps in (project["dependencies"], extras["agent"]):
        names = {d.split(">")[0].split("=")[0].split("[")[0].split("<")[0].lower() for d in deps}
        assert not names & {"fastapi", "uvicorn", "prometheus-client", "sqlalchemy"}, names
    center = " ".join(extras["center"])
    assert all(name in center for name in ("fastapi", "uvicorn", "prometheus-client"))
