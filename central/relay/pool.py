"""The relay's worker processes: one per core by default, each restarted if it dies.
A stream lives on the worker its id hashes to, so the front needs no shared table."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import zlib
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


class WorkerPool:
    def __init__(
        self,
        count: int,
        token_keys: dict[str, str],
        current_key: str,
        ice: IceSettings,
        log_level: str,
        log_format: str,
    ) -> None:
        shared = {
            "RTCC_TOKENS__KEYS": json.dumps(token_keys),
            "RTCC_TOKENS__CURRENT": current_key,
            "RTCC_ICE": ice.model_dump_json(),
            "RTCC_LOG__LEVEL": log_level,
            "RTCC_LOG__FORMAT": log_format,
        }
        self.workers = [
            WorkerProcess(
                i, port, {**shared, "RTCC_WORKER__INDEX": str(i), "RTCC_WORKER__PORT": str(port)}
            )
            for i, port in enumerate(free_port() for _ in range(count))
        ]

    def url_for(self, stream_id: str) -> str:
        return self.workers[zlib.crc32(stream_id.encode()) % len(self.workers)].url

    async def run(self) -> None:
        """Keep every worker running until cancelled; then stop them all."""
        try:
            await asyncio.gather(*(self._keep(w) for w in self.workers))
        finally:
            await asyncio.gather(*(self._stop(w) for w in self.workers))

    async def wait_ready(self, timeout: float = 20.0) -> None:
        async with httpx.AsyncClient(timeout=1.0) as http:
            for worker in self.workers:
                deadline = asyncio.get_running_loop().time() + timeout
                while True:
                    try:
                        if (await http.get(worker.url + "/healthz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if asyncio.get_running_loop().time() > deadline:
                        raise TimeoutError(f"relay worker {worker.index} did not start")
                    await asyncio.sleep(0.1)

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
            code = await worker.proc.wait()
            worker.restarts += 1
            attempt = 0 if asyncio.get_running_loop().time() - started > 60 else attempt + 1
            log.error(
                "relay_worker_died", index=worker.index, returncode=code, restarts=worker.restarts
            )
            await asyncio.sleep(backoff.delay(attempt))

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
