"""The relay's worker processes: one per core by default, each restarted if it dies.
A stream lives on the worker its id hashes to, so the front needs no shared table.

A worker that dies takes its streams with it: whoever listens (`on_restart`) is told as
soon as the replacement answers, so the streams' publishers can be asked back at once."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import structlog

from central.broker import free_port
from runtime.backoff import Backoff
from runtime.config import IceSettings
from runtime.process import die_with_parent

log = structlog.get_logger("rtcc.relay.pool")


@dataclass
class WorkerProcess:
    index: int
    port: int
    env: dict[str, str]
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


READY_POLL_S = 0.02


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
    ) -> None:
        shared = {
            "RTCC_TOKENS__KEYS": json.dumps(token_keys),
            "RTCC_TOKENS__CURRENT": current_key,
            "RTCC_ICE": ice.model_dump_json(),
            "RTCC_LOG__LEVEL": log_level,
            "RTCC_LOG__FORMAT": log_format,
            "RTCC_MEDIA_TIMEOUT_S": str(media_timeout_s),
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
            await asyncio.gather(*(self._stop(w) for w in self.workers))

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
        backoff = Backoff(initial_s=0.2, max_s=10.0)
        attempt = 0
        while True:
            worker.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "rtcc",
                "relay-worker",
                env={**os.environ, **worker.env},
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
            started = asyncio.get_running_loop().time()
            announce = None
            if worker.restarts:
                announce = asyncio.create_task(self._announce_restart(worker))
            try:
                code = await worker.proc.wait()
            finally:
                if announce is not None:
                    announce.cancel()
                    await asyncio.gather(announce, return_exceptions=True)
            worker.restarts += 1
            attempt = 0 if asyncio.get_running_loop().time() - started > 60 else attempt + 1
            log.error(
                "relay_worker_died", index=worker.index, returncode=code, restarts=worker.restarts
            )
            await asyncio.sleep(backoff.delay(attempt))

    async def _announce_restart(self, worker: WorkerProcess) -> None:
        try:
            await self._answers(worker, timeout=20.0)
        except TimeoutError:
            log.error("relay_worker_not_answering", index=worker.index)
            return
        log.info("relay_worker_restarted", index=worker.index, restarts=worker.restarts)
        for listener in self.on_restart:
            listener(worker.index)

    @staticmethod
    async def _stop(worker: WorkerProcess) -> None:
        proc = worker.proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
