"""What the unit was asked to stream, kept across restarts, and the live stream doing it.

The center's `stream.start` is a standing order, not a one-off: it is written to the
agent's database before it is acted on, so a gateway that reboots or is killed resumes
publishing at once, until `stream.stop` or the order's end time. Anything that may have
broken the media path (a network change, an MQTT reconnect, the center saying it sees no
media) rebuilds the PeerConnection at once instead of waiting for timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog
from pydantic import ValidationError

from agent.config import AgentSettings
from agent.store import Meta
from firmware_bridge.media import VideoSource
from protocol.streams import StreamStartArgs

if TYPE_CHECKING:
    from agent.streaming import LiveStream
    from agent.uplink import UplinkReport

log = structlog.get_logger("rtcc.agent.streams")
WANTED_KEY = "wanted_stream"
# An order without an end time (an older center) lasts this long.
DEFAULT_DURATION_S = 3600.0
START_TIMEOUT_S = 10.0
REBUILD_QUIET_S = 5.0


class StreamNotLive(Exception):
    """The stream did not reach the relay in time (it keeps trying unless refused)."""


class StreamKeeper:
    def __init__(
        self,
        settings: AgentSettings,
        meta: Meta,
        source: Callable[[], VideoSource | None],
        on_watched: Callable[[bool], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._meta = meta
        self._source = source
        self._on_watched = on_watched
        self._clock = clock
        self._stream: LiveStream | None = None
        self._wanted: StreamStartArgs | None = None
        self._rebuilt_at = float("-inf")

    @property
    def live(self) -> bool:
        return self._stream is not None and self._stream.live

    @property
    def stream_id(self) -> str | None:
        return self._wanted.stream_id if self._wanted else None

    @property
    def uplink(self) -> UplinkReport | None:
        return self._stream.uplink if self._stream is not None else None

    def resume(self) -> None:
        """After a restart: carry on with the order kept in the database, if still valid."""
        stored = self._meta.get(WANTED_KEY)
        if stored is None:
            return
        try:
            wanted = StreamStartArgs.model_validate(stored)
        except ValidationError:
            log.error("stored_stream_order_unreadable")
            self._meta.put(WANTED_KEY, None)
            return
        if wanted.until is not None and wanted.until <= self._clock():
            self._meta.put(WANTED_KEY, None)
            return
        log.info("stream_resumed", stream_id=wanted.stream_id)
        self._launch(wanted)

    async def start(self, args: StreamStartArgs) -> None:
        """Take (or renew) the order and wait until the relay has the stream."""
        if self._settings.center_url is None:
            raise ValueError("this agent has no center_url to publish to")
        until = args.until if args.until is not None else self._clock() + DEFAULT_DURATION_S
        wanted = args.model_copy(update={"until": until, "republish": False})
        self._meta.put(WANTED_KEY, wanted.model_dump())
        stream = self._stream
        if stream is not None and stream.stream_id == args.stream_id and stream.running:
            self._wanted = wanted
            stream.update_token(args.token)
            if args.republish:
                self.path_changed("the center sees no media")
        else:
            await self._end()
            self._launch(wanted)
        assert self._stream is not None
        if not await self._stream.wait_live(START_TIMEOUT_S):
            raise StreamNotLive("could not get the stream to the relay")

    async def stop(self) -> str | None:
        """End the order; returns the stream id that was wanted."""
        stream_id = self.stream_id
        self._meta.put(WANTED_KEY, None)
        await self._end()
        return stream_id

    async def expire(self) -> None:
        """End an order whose time is up (called periodically)."""
        wanted = self._wanted
        if wanted is not None and wanted.until is not None and wanted.until <= self._clock():
            log.info("stream_order_expired", stream_id=wanted.stream_id)
            await self.stop()

    def path_changed(self, reason: str, new_network: bool = False) -> None:
        """The network or the MQTT link changed: the media path is rebuilt now (aiortc has
        no ICE restart; a fresh PeerConnection is the tool). One network change often
        brings an MQTT reconnect a moment later: that does not rebuild again."""
        now = self._clock()
        if self._stream is None or not self._stream.running:
            return
        if now - self._rebuilt_at < REBUILD_QUIET_S:
            log.info("rebuild_skipped", reason=reason, stream_id=self._stream.stream_id)
            return
        self._rebuilt_at = now
        self._stream.rebuild(reason, new_network)

    async def close(self) -> None:
        """Stop publishing but keep the order: a restarted agent resumes it."""
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.stop()

    def _launch(self, wanted: StreamStartArgs) -> None:
        from agent.streaming import LiveStream  # noqa: PLC0415 (media stack loads only now)
        from runtime import consent  # noqa: PLC0415 (it imports aioice)

        consent.install()
        self._wanted = wanted
        self._stream = LiveStream(self._settings, wanted.stream_id, wanted.token, self._source())
        self._on_watched(True)

    async def _end(self) -> None:
        stream, self._stream, self._wanted = self._stream, None, None
        if stream is not None:
            await stream.stop()
            self._on_watched(False)
