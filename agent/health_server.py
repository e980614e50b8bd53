"""The agent's health over local HTTP: GET /metrics (Prometheus text) and GET /healthz
(200, or 503 naming the wedged loops). A few lines of asyncio: no web framework on a gateway."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from agent.evidence.status import evidence_status
from agent.health import HealthSnapshot, render_metrics

if TYPE_CHECKING:
    from agent.service import Agent

log = structlog.get_logger("rtcc.agent.health")
REQUEST_TIMEOUT_S = 5.0
MAX_REQUEST_BYTES = 8192


async def collect(agent: Agent, now: float) -> HealthSnapshot:
    """What the agent's parts say now (the evidence folder's backlog read off the loop)."""
    links = {"mqtt": agent.link.connected.is_set()}
    if agent.bodycam is not None:
        links["bodycam"] = agent.bodycam.state.connected(now)
    camera_frames = None
    waiting: dict[str, int] = {}
    if agent.evidence is not None:
        camera_frames = agent.evidence.capture.frames_seen
        links["camera"] = agent.health.camera_flowing(camera_frames, now)
        status = await asyncio.to_thread(evidence_status, agent.evidence.root)
        waiting = {k: status[k] for k in ("segments_to_upload", "bytes_to_upload")}
    uplink = agent.streams.uplink
    renewal = agent.renewal.status if agent.renewal is not None else None
    expires_at = renewal.expires_at if renewal is not None else None
    return HealthSnapshot(
        uptime_s=agent.health.uptime(now),
        links=links,
        outbox_rows=agent.outbox.rows,
        outbox_bytes=agent.outbox.size_bytes,
        outbox_dropped=agent.outbox.dropped,
        mqtt_connects=agent.link.connects,
        commands_rejected=agent.commands_rejected,
        stream_live=agent.streams.live,
        uplink_level=uplink.level if uplink is not None and agent.streams.live else None,
        # -1 until a task's first run: none restarted yet.
        restarts={k: max(0, v) for k, v in agent.health.restarts.counts.items()},
        loop_ages_s=agent.health.beats.ages(now),
        stalled=agent.health.beats.stalled(now),
        evidence_segments_waiting=waiting.get("segments_to_upload"),
        evidence_bytes_waiting=waiting.get("bytes_to_upload"),
        camera_frames=camera_frames,
        outbox_not_authorized=agent.pump.not_authorized,
        cert_expires_in_s=None if expires_at is None else expires_at - now,
        renewal_outcomes=dict(renewal.outcomes) if renewal is not None else None,
        renewal_last=renewal.last_outcome if renewal is not None else None,
    )


class HealthServer:
    def __init__(
        self, host: str, port: int, snapshot: Callable[[], Awaitable[HealthSnapshot]]
    ) -> None:
        self._host = host
        self._port = port
        self._snapshot = snapshot
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self._host, self._port, limit=MAX_REQUEST_BYTES
        )
        log.info("health_serving", url=f"http://{self._host}:{self.port}/metrics")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            status, body, kind = await self._answer(head.split(b"\r\n", 1)[0].decode("latin-1"))
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _answer(self, request_line: str) -> tuple[str, bytes, str]:
        method, _, rest = request_line.partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if method != "GET":
            return "405 Method Not Allowed", b"", "text/plain"
        if path == "/metrics":
            text = render_metrics(await self._snapshot())
            return "200 OK", text.encode(), "text/plain; version=0.0.4; charset=utf-8"
        if path == "/healthz":
            stalled = (await self._snapshot()).stalled
            if stalled:
                return (
                    "503 Service Unavailable",
                    f"wedged: {' '.join(stalled)}\n".encode(),
                    "text/plain",
                )
            return "200 OK", b"ok\n", "text/plain"
        return "404 Not Found", b"", "text/plain"
