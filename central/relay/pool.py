"""The relay's worker processes: one per core by default, each restarted if it dies.
A stream lives on the worker its id hashes to, so the front needs no shared table.

A worker that dies takes its streams with it: whoever listens (`on_restart`) is told as
soon as the replacement answers, so the streams' publishers can be asked back at once."""

from __future__ import annotations

import asyncio
import json
import sys
import zlib
from collections.abc import Callable, Mapping

import httpx
import structlog

from central.broker import free_port
from runtime.backoff import Backoff, Retry
from runtime.config import IceSettings
from runtime.process import ChildProcess, keep_running

log = structlog.get_logger("rtcc.relay.pool")


class WorkerProcess(ChildProcess):
    """One `rtcc relay-worker` process, listening on `port`."""

    def __init__(self, index: int, port: int, env: dict[str, str]) -> None:
        super().__init__([sys.executable, "-m", "rtcc", "relay-worker"], env)
        self.index = index
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


READY_POLL_S = 0.02
# A worker that ran this long before it died was healthy: restart it soon.
HEALTHY_AFTER_S = 60.0


class WorkerPool:
    def __init__(
        self,
        count: int,
        token_keys: dict[str, str],
        current_key: str,
        ice: IceSettings,
        log_level: str,
        log_format: str,
        media_timeout_s: float = 3.0,
        worker_env: Mapping[str, str] | None = None,
    ) -> None:
        shared = {
            "RTCC_TOKENS__KEYS": json.dumps(token_keys),
            "RTCC_TOKENS__CURRENT": current_key,
            "RTCC_ICE": ice.model_dump_json(),
            "RTCC_LOG__LEVEL": log_level,
            "RTCC_LOG__FORMAT": log_format,
            "RTCC_MEDIA_TIMEOUT_S": str(media_timeout_s),
            **(worker_env or {}),
        }
        # Called with a worker's index once a restarted worker answers again.
        self.on_restart: list[Callable[[int], None]] = []
        self.workers = [
            WorkerProcess(
                i, port, {**shared, "RTCC_WORKER__INDEX": str(i), "RTCC_WORKER__PORT": str(port)}
            )
            for i, port in enumerate(free_port() for _ in range(count))
        ]

    def index_for(self, stream_id: str) -> int:
        return zlib.crc32(stream_id.encode()) % len(self.workers)

    def url_for(self, stream_id: str) -> str:
        return self.workers[self.index_for(stream_id)].url

    async def run(self) -> None:
        """Keep every worker running until cancelled; then stop them all."""
        try:
            await asyncio.gather(*(self._keep(w) for w in self.workers))
        finally:
            await asyncio.gather(*(w.stop() for w in self.workers))

    async def wait_ready(self, timeout: float = 20.0) -> None:
        for worker in self.workers:
            await self._answers(worker, timeout)

    @staticmethod
    async def _answers(worker: WorkerProcess, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient(timeout=1.0) as http:
            while True:
                try:
                    if (await http.get(worker.url + "/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if loop.time() > deadline:
                    raise TimeoutError(f"relay worker {worker.index} did not start")
                await asyncio.sleep(READY_POLL_S)

    async def _keep(self, worker: WorkerProcess) -> None:
        def died(code: int) -> None:
            log.error(
                "relay_worker_died", index=worker.index, returncode=code, restarts=worker.restarts
            )

        await keep_running(
            worker,
            Retry(Backoff(initial_s=0.2, max_s=10.0), healthy_after_s=HEALTHY_AFTER_S),
            died,
            after_restart=lambda: self._announce_restart(worker),
        )

    async def _announce_restart(self, worker: WorkerProcess) -> None:
        try:
            await self._answers(worker, timeout=20.0)
        except TimeoutError:
            log.error("relay_worker_not_answering", index=worker.index)
            return
        log.info("relay_worker_restarted", index=worker.index, restarts=worker.restarts)
        for listener in self.on_restart:
            listener(worker.index)
