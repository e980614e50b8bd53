"""`keep_running`: a real child process started again whenever it exits, stopped on cancel."""

import asyncio
import sys
from pathlib import Path

from runtime.backoff import Backoff, Retry
from runtime.process import ChildProcess, keep_running
from tests.helpers import wait_for

FAST = Backoff(initial_s=0.01, max_s=0.02)


async def test_an_exiting_child_is_started_again_and_each_exit_heard(tmp_path: Path) -> None:
    child = ChildProcess([sys.executable, "-c", "raise SystemExit(3)"], {}, tmp_path / "log")
    codes: list[int] = []
    task = asyncio.create_task(keep_running(child, Retry(FAST), codes.append))
    await wait_for(lambda: child.restarts >= 3, timeout=20)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert set(codes) == {3}


async def test_cancelling_stops_the_child(tmp_path: Path) -> None:
    child = ChildProcess([sys.executable, "-c", "import time; time.sleep(60)"], {}, stop_grace_s=5)
    task = asyncio.create_task(keep_running(child, Retry(FAST), lambda _code: None))
    await wait_for(lambda: child.proc is not None, timeout=10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert child.proc is not None
    assert child.proc.returncode is not None
    assert child.restarts == 0


async def test_a_child_that_cannot_start_is_retried_when_asked(tmp_path: Path) -> None:
    child = ChildProcess([str(tmp_path / "missing")], {})
    failures: list[Exception] = []
    task = asyncio.create_task(
        keep_running(child, Retry(FAST), lambda _code: None, on_start_failed=failures.append)
    )
    await wait_for(lambda: len(failures) >= 2, timeout=10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert all(isinstance(exc, OSError) for exc in failures)


async def test_a_stopping_child_is_not_started_again(tmp_path: Path) -> None:
    child = ChildProcess([sys.executable, "-c", "pass"], {})
    await asyncio.wait_for(
        keep_running(child, Retry(FAST), lambda _code: None, stopping=lambda: True), 20
    )
    assert child.restarts == 0
