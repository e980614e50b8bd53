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
from central.relay.clip_cache import ClipCache, RangeNotSatisfiable, byte_range
from central.relay.models import StreamInfo
from central.relay.pool import WorkerPool
from central.relay.rewind_models import CLIP_END, CLIP_FRAMES, CLIP_START, Clip, RecentSpan
from central.viewer_hold import ViewerHold
from protocol.errors import ProtocolError
from protocol.tokens import Audience, Claims
from protocol.topics import check_id
from runtime.config import LogSettings

__all__ = [
    "CLIP_END",
    "CLIP_FRAMES",
    "CLIP_START",
    "Clip",
    "ClipCache",
    "RangeNotSatisfiable",
    "RecentSpan",
    "RelayFront",
    "StreamInfo",
    "WorkerReports",
    "byte_range",
]

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
            {
                "RTCC_REWIND_S": str(settings.rewind_s),
                "RTCC_REWIND_MAX_BYTES": str(settings.rewind_max_bytes),
                "RTCC_REWIND_WORKER_MAX_BYTES": str(settings.rewind_worker_max_bytes),
            },
        )
        self._clock = clock
        self._proxy = httpx.AsyncClient(timeout=PROXY_TIMEOUT_S)
        self._poll = httpx.AsyncClient(timeout=WORKER_POLL_TIMEOUT_S)
        # Long polls of their own: waits for media never take the reports' connections.
        self._live_poll = httpx.AsyncClient(timeout=WORKER_POLL_TIMEOUT_S)
        self.hold = ViewerHold(self.wait_live_for, settings.viewer_hold_s)
        self.pool.on_restart.append(lambda _index: self.hold.relay_lost())

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
        await self.hold.close()
        await self._proxy.aclose()
        await self._poll.aclose()
        await self._live_poll.aclose()

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
        answer = await self._ask_worker(stream_id, "still")
        if answer.status_code == 200:
            return answer.content
        raise _refused(answer)

    async def rewind(self, stream_id: str, since_s: float, until_s: float) -> Clip:
        """The stream's frames that show [since_s, until_s] (epoch seconds), as its worker
        holds them, in one file: fragmented MP4 for H.264, WebM for VP8. NotFound when the
        worker holds none of that time; Unavailable when it cannot be reached."""
        params = {"since": repr(since_s), "until": repr(until_s)}
        answer = await self._ask_worker(stream_id, "rewind", params)
        if answer.status_code != 200:
            raise _refused(answer)
        try:
            start, end = float(answer.headers[CLIP_START]), float(answer.headers[CLIP_END])
            frames = int(answer.headers[CLIP_FRAMES])
        except (KeyError, ValueError):
            raise Unavailable("the relay worker's clip is not dated", retry_after_s=1) from None
        media_type = answer.headers.get("content-type", "application/octet-stream")
        return Clip(answer.content, media_type, start, end, frames)

    async def recent_span(self, stream_id: str) -> RecentSpan | None:
        """What the stream's worker holds of it for rewind; None when nothing."""
        answer = await self._ask_worker(stream_id, "recent")
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise _refused(answer)
        try:
            return RecentSpan.model_validate_json(answer.content)
        except ValueError:
            raise Unavailable("the relay worker's answer is unreadable", retry_after_s=1) from None

    async def _ask_worker(
        self, stream_id: str, what: str, params: dict[str, str] | None = None
    ) -> httpx.Response:
        """GET /streams/{stream_id}/{what} at the stream's worker, with the center's own
        viewer token for the stream (what the center reads of a stream is a view of it)."""
        try:
            check_id(stream_id)
        except ProtocolError as exc:
            raise Invalid(str(exc)) from None
        token = self.signer.issue("whep", stream_id, self._clock(), CENTER_TOKEN_TTL_S, "center")
        url = self.worker_url(stream_id, f"/streams/{stream_id}/{what}")
        try:
            return await self._proxy.get(
                url, params=params, headers={"authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as exc:
            raise Unavailable(f"relay worker unreachable: {exc}", retry_after_s=1) from None

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
                answer = await self._live_poll.get(url, params={"timeout": left}, timeout=left + 2)
                if answer.status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            await asyncio.sleep(min(RETRY_UNREACHABLE_S, max(0.0, left)))
        return False

    async def wait_live_for(self, stream_id: str, seconds: float) -> bool:
        return await self.wait_live(stream_id, self._clock() + seconds)

    async def drop(self, stream_id: str) -> None:
        """Drop the stream at its worker (its sessions end); an unreachable worker has
        already lost it."""
        url = f"{self.pool.url_for(stream_id)}/streams/{stream_id}"
        try:
            await self._poll.delete(url)
        except httpx.HTTPError as exc:
            log.debug("relay_drop_unanswered", stream_id=stream_id, error=str(exc))


def _refused(answer: httpx.Response) -> CenterError:
    """The worker's refusal of a still or a clip, as the center's own: what is about the
    stream is passed on, anything else (the center's token refused, a crash) is the relay
    failing."""
    try:
        detail = str(answer.json()["detail"])
    except (ValueError, KeyError, TypeError):
        detail = f"relay worker answered {answer.status_code}"
    if answer.status_code == 404:
        return NotFound(detail)
    if answer.status_code == 413:
        return TooLarge(detail)
    log.warning("relay_request_failed", status=answer.status_code, detail=detail)
    retry = answer.headers.get("retry-after", "")
    return Unavailable(detail, retry_after_s=int(retry) if retry.isdigit() else 1)
