"""Child processes: they never outlive their parent (even a SIGKILLed one), and a supervisor
starts them again whenever they exit."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol

from runtime.backoff import Retry

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`preexec_fn` for children: Linux sends them SIGTERM when the parent dies. Children
    run in their own session (so a Ctrl-C reaches only the parent, which stops them in
    order), which would otherwise leave them running after a hard kill of the parent."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Restartable(Protocol):
    restarts: int

    async def start(self) -> None:
        """Start the process; raises if it cannot (the supervisor may retry)."""
        ...

    async def wait(self) -> int:
        """Until the process exits; its return code."""
        ...

    async def stop(self) -> None: ...


class ChildProcess:
    """One asyncio child in its own session, output appended to `log_path` (or inherited),
    stopped with SIGTERM and, after `stop_grace_s`, SIGKILL."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        log_path: Path | None = None,
        stop_grace_s: float = 10.0,
    ) -> None:
        self.argv = list(argv)
        self.env = env
        self.log_path = log_path
        self.stop_grace_s = stop_grace_s
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0

    async def start(self) -> None:
        log = self.log_path.open("ab") if self.log_path is not None else None
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                env={**os.environ, **self.env},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Own session: a Ctrl-C meant for the parent must not reach the child,
                # which the parent stops in order.
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        finally:
            if log is not None:
                log.close()

    async def wait(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), self.stop_grace_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def keep_running(
    child: Restartable,
    retry: Retry,
    on_exit: Callable[[int], None],
    *,
    on_start_failed: Callable[[Exception], None] | None = None,
    after_restart: Callable[[], Coroutine[Any, Any, None]] | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> None:
    """Start `child` and start it again, after `retry`'s delay, whenever it exits (a run
    that ends is judged by how long it lasted). `on_exit` hears each exit's code;
    `on_start_failed`, if given, hears a start that raised, which is then retried (else
    the error ends the supervision). `after_restart` runs beside each restarted run (e.g.
    to announce it once it answers). Returns once `stopping()` holds, checked before each
    start and when the child exits; stops the child when cancelled."""
    loop = asyncio.get_running_loop()
    try:
        while not stopping():  # a stop may come while the loop waits to restart
            try:
                await child.start()
            except Exception as exc:
                if on_start_failed is None:
                    raise
                on_start_failed(exc)
                retry.failed()
                await asyncio.sleep(retry.delay())
                continue
            started = loop.time()
            companion: asyncio.Task[None] | None = None
            if after_restart is not None and child.restarts:
                companion = asyncio.create_task(after_restart())
            try:
                code = await child.wait()
            finally:
                if companion is not None:
                    companion.cancel()
                    await asyncio.gather(companion, return_exceptions=True)
            if stopping():
                return
            child.restarts += 1
            retry.ended(loop.time() - started)
            on_exit(code)
            await asyncio.sleep(retry.delay())
    finally:
        await child.stop()
