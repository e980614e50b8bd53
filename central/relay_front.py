"""The center's one way into the relay: its worker processes, which worker homes a stream,
what the workers report, and WHIP/WHEP requests checked for their token and passed on to
that worker. Nothing outside `central.relay` imports it but through here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import structlog
from fastapi import Request, Response

from central.config import RelaySettings, TokenKeys
from central.errors import CenterError, Invalid, NotFound, TooLarge, Unavailable
from central.relay.auth import authorize
from central.relay.models import StreamInfo
from central.relay.pool import WorkerPool
from protocol.errors import ProtocolError
from protocol.tokens import Audience, Claims
from protocol.topics import check_id
from runtime.config import LogSettings

__all__ = ["RelayFront", "StreamInfo", "WorkerReports"]

log = structlog.get_logger("rtcc.relay.front")
WORKER_POLL_TIMEOUT_S = 2.0
PROXY_TIMEOUT_S = 10.0
RETRY_UNREACHABLE_S = 0.1
FORWARDED = ("content-type", "authorization")
ANSWERED = ("content-type", "location", "www-authenticate")
# The center's own token for one request to a worker.
CENTER_TOKEN_TTL_S = 60.0

# What every worker reports by stream id, and the indexes of workers that did not answer.
WorkerReports = tuple[dict[str, StreamInfo], set[int]]


class RelayFront:
    def __init__(
        self,
        settings: RelaySettings,
        tokens: TokenKeys,
        logs: LogSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = tokens.signer()
        self.pool = WorkerPool(
            settings.workers,
            tokens.keys,
            tokens.current,
            settings.ice,
            logs.level,
            logs.format,
            settings.media_timeout_s,
        )
        self._clock = clock
        self._proxy = httpx.AsyncClient(timeout=PROXY_TIMEOUT_S)
        self._poll = httpx.AsyncClient(timeout=WORKER_POLL_TIMEOUT_S)

    @property
    def on_restart(self) -> list[Callable[[int], None]]:
        """Called with a worker's index once a restarted worker answers again (its
        streams are gone)."""
        return self.pool.on_restart

    async def run(self) -> None:
        await self.pool.run()

    async def wait_ready(self) -> None:
        await self.pool.wait_ready()

    async def close(self) -> None:
        await self._proxy.aclose()
        await self._poll.aclose()

    def worker_url(self, stream_id: str, path: str) -> str:
        """`path` at the worker that homes the stream."""
        return self.pool.url_for(stream_id) + path

    def home_of(self, stream_id: str) -> int:
        """The index of the worker that homes the stream."""
        return self.pool.index_for(stream_id)

    # ---- media requests -----------------------------------------------------------------

    def authorize(self, aud: Audience, stream_id: str, authorization: str | None) -> Claims:
        return authorize(self.signer, aud, stream_id, authorization, self._clock())

    async def proxy(self, request: Request, stream_id: str) -> Response:
        """The request as the stream's worker answers it."""
        url = self.pool.url_for(stream_id) + request.url.path
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED}
        try:
            answer = await self._proxy.request(
                request.method, url, headers=headers, content=await request.body()
            )
        except httpx.HTTPError as exc:
            raise Unavailable(f"relay worker unreachable: {exc}", retry_after_s=1) from None
        keep = {k: v for k, v in answer.headers.items() if k.lower() in ANSWERED}
        return Response(answer.content, status_code=answer.status_code, headers=keep)

    async def still_jpeg(self, stream_id: str) -> bytes:
        """A JPEG of the live stream's latest keyframe, decoded once, at its worker.
        NotFound when the stream is not live or has no keyframe yet; TooLarge past
        4096x4096; Unavailable when the worker cannot be reached or cannot decode it."""
        try:
            check_id(stream_id)
        except ProtocolError as exc:
            raise Invalid(str(exc)) from None
        token = self.signer.issue("whep", stream_id, self._clock(), CENTER_TOKEN_TTL_S, "center")
        url = self.worker_url(stream_id, f"/streams/{stream_id}/still")
        try:
            answer = await self._proxy.get(url, headers={"authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise Unavailable(f"relay worker unreachable: {exc}", retry_after_s=1) from None
        if answer.status_code == 200:
            return answer.content
        raise _still_refused(answer)

    # ---- what the workers say -----------------------------------------------------------

    async def streams(self) -> WorkerReports:
        """What every worker reports (asked in parallel), and which workers did not answer:
        an unanswered worker is "unknown", never "no media"."""
        workers = self.pool.workers
        answers = await asyncio.gather(
            *(self._poll.get(worker.url + "/streams") for worker in workers),
            return_exceptions=True,
        )
        found: dict[str, StreamInfo] = {}
        unreachable: set[int] = set()
        for worker, answer in zip(workers, answers, strict=True):
            try:
                if isinstance(answer, BaseException):
                    raise answer
                infos = [StreamInfo.model_validate(s) for s in answer.json()]
            except (httpx.HTTPError, ValueError):
                unreachable.add(worker.index)
                log.debug("relay_worker_unreachable", index=worker.index)
                continue
            found.update({info.stream_id: info for info in infos})
        return found, unreachable

    async def wait_live(self, stream_id: str, deadline: float) -> bool:
        """Until media of the stream reaches its worker: the worker answers a long poll as
        soon as it does, so this only asks again when the worker could not be reached or its
        poll ran out before the deadline."""
        url = f"{self.pool.url_for(stream_id)}/streams/{stream_id}/live"
        while (left := deadline - self._clock()) > 0:
            try:
                answer = await self._poll.get(url, params={"timeout": left}, timeout=left + 2)
                if answer.status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            await asyncio.sleep(min(RETRY_UNREACHABLE_S, max(0.0, left)))
        return False

    async def drop(self, stream_id: str) -> None:
        """Drop the stream at its worker (its sessions end); an unreachable worker has
        already lost it."""
        url = f"{self.pool.url_for(stream_id)}/streams/{stream_id}"
        try:
            await self._poll.delete(url)
        except httpx.HTTPError as exc:
            log.debug("relay_drop_unanswered", stream_id=stream_id, error=str(exc))


def _still_refused(answer: httpx.Response) -> CenterError:
    """The worker's refusal of a still, as the center's own: what is about the stream is
    passed on, anything else (the center's token refused, a crash) is the relay failing."""
    try:
        detail = str(answer.json()["detail"])
    except (ValueError, KeyError, TypeError):
        detail = f"relay worker answered {answer.status_code}"
    if answer.status_code == 404:
        return NotFound(detail)
    if answer.status_code == 413:
        return TooLarge(detail)
    log.warning("relay_still_failed", status=answer.status_code, detail=detail)
    retry = answer.headers.get("retry-after", "")
    return Unavailable(detail, retry_after_s=int(retry) if retry.isdigit() else 1)
