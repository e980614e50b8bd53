"""A real `rtcc agent` process for the service tests: its output lines collected as they
come (standard error merged), killed if a test leaves it running."""

import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator

from tests.helpers import ROOT, kill_if_running


class AgentProcess:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []

    def health_url(self) -> str | None:
        """Where the agent serves its health (its `health_serving` log record)."""
        for line in list(self.lines):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") == "health_serving":
                return str(record["url"])
        return None


@contextlib.contextmanager
def agent_process(env: dict[str, str], *python_options: str) -> Iterator[AgentProcess]:
    process = subprocess.Popen(
        [sys.executable, *python_options, "-m", "rtcc", "agent"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    agent = AgentProcess(process)
    reader = threading.Thread(target=lambda: agent.lines.extend(process.stdout or ()), daemon=True)
    reader.start()
    try:
        yield agent
    finally:
        kill_if_running(process)
        reader.join(timeout=10)
