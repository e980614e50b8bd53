"""Supervised background work: restart a crashed loop with backoff, never lose it silently."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

from runtime.backoff import Backoff, Retry

log = structlog.get_logger("rtcc.supervise")


async def supervised(
    name: str,
    run: Callable[[], Awaitable[None]],
    backoff: Backoff = Backoff(initial_s=0.5, max_s=30.0),
    healthy_after_s: float = 60.0,
) -> None:
    """Run `run()` forever; if it returns or raises, log it and start it again after a
    jittered delay. A run that lasted `healthy_after_s` resets the backoff."""
    loop = asyncio.get_running_loop()
    retry = Retry(backoff, healthy_after_s)
    while True:
        started = loop.time()
        try:
            await run()
            log.warning("task_exited", task=name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task_crashed", task=name)
        retry.ended(loop.time() - started)
        await asyncio.sleep(retry.delay())


class TaskGroup:
    """Owns named background tasks and cancels them all, awaited, on close."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def spawn(self, name: str, run: Callable[[], Awaitable[None]], supervise: bool = True) -> None:
        coro = supervised(name, run) if supervise else run()
        self._tasks.append(asyncio.create_task(coro, name=name))  # type: ignore[arg-type]

    async def cancel(self, name: str) -> None:
        """Stop one task before the others (shutdown order matters to some)."""
        found = [t for t in self._tasks if t.get_name() == name]
        for task in found:
            task.cancel()
            self._tasks.remove(task)
        await asyncio.gather(*found, return_exceptions=True)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


class BoundedTasks:
    """Short jobs started from callbacks (an alert to store, a command to send): at most
    `limit` at once, the rest refused and logged; a job's failure is logged, never lost;
    all cancelled, awaited, on close."""

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> bool:
        if len(self._tasks) >= self.limit:
            work.close()
            log.error("task_refused", task=self.name, reason="too many pending", limit=self.limit)
            return False
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return True

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task_failed", task=self.name, error=repr(task.exception())[:300])

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
