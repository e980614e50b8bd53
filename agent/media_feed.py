"""What the publisher hands to aiortc, and how the degrade ladder's setting reaches the
camera.

- `MediaPlan` knows which steps a camera offers (an encoder that changes its bitrate, a
  substream) and applies a ladder setting to them. It outlives sessions: a rebuilt
  PeerConnection keeps the step the link needed. It also passes the relay's keyframe
  requests on, at most one a second: aiortc's receiver sends a PLI for every hole it gives
  up on, and on a lossy link each keyframe answered makes the next burst of loss.
- `EncodedVideoTrack` hands encoded frames to aiortc, which packetizes them without encoding,
  and drops what must not go: non-key frames on the keyframes-only step, and frames up to
  the next keyframe while the media socket has a backlog (asyncio buffers a datagram the
  kernel refused, without bound, and that queue would sit in front of everything else).
  On the keyframes-only step it asks for a keyframe each second: a source that encodes
  keeps a picture a second going (a relay also takes a long silence for a dead publisher);
  a pass-through camera ignores it and sends one per GOP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiortc.mediastreams import MediaStreamError

from agent.ladder import Setting
from agent.uplink import Level
from firmware_bridge.live import SubstreamSwitch
from firmware_bridge.media import EncodedFrame, RateControl, VideoSource
from runtime.encoded_track import EncodedTrack

MAX_SEND_BACKLOG = 256 * 1024
KEYFRAMES_ONLY_INTERVAL_S = 1.0
KEYFRAME_REQUEST_INTERVAL_S = 1.0


class MediaPlan:
    def __init__(
        self,
        source: VideoSource,
        rate: RateControl | None = None,
        substream: VideoSource | None = None,
    ) -> None:
        self._rate = rate if rate is not None and rate.nominal_bitrate is not None else None
        self._switch = SubstreamSwitch(source, substream) if substream is not None else None
        self.source: VideoSource = self._switch or source
        self.setting = Setting()
        self.keyframes_only = False
        self._bitrate = self.nominal_bps
        self._keyframe_asked_at: float | None = None

    @property
    def nominal_bps(self) -> int | None:
        return None if self._rate is None else self._rate.nominal_bitrate

    @property
    def levels(self) -> tuple[Level, ...]:
        levels: list[Level] = ["normal"]
        if self._rate is not None:
            levels.append("reduced")
        if self._switch is not None:
            levels.append("substream")
        levels.append("keyframes")
        return tuple(levels)

    def keyframe_wanted(self, now: float) -> bool:
        """The relay asks for a keyframe (PLI/FIR); True if the camera was asked."""
        last = self._keyframe_asked_at
        if last is not None and now - last < KEYFRAME_REQUEST_INTERVAL_S:
            return False
        self._keyframe_asked_at = now
        self.source.request_keyframe()
        return True

    def apply(self, setting: Setting) -> None:
        on_substream = self._switch is not None and setting.level in ("substream", "keyframes")
        if self._switch is not None:
            self._switch.use_substream(on_substream)
        if self._rate is not None:
            # The main stream also feeds evidence: it keeps its nominal rate whenever the
            # live stream does not need it lower.
            lower = setting.level != "normal" and not on_substream
            bitrate = setting.target_bps if lower and setting.target_bps else self.nominal_bps
            if bitrate is not None and bitrate != self._bitrate:
                self._rate.set_bitrate(bitrate)
                self._bitrate = bitrate
        self.keyframes_only = setting.level == "keyframes"
        self.setting = setting


class EncodedVideoTrack(EncodedTrack):
    def __init__(
        self,
        plan: MediaPlan,
        on_sent: Callable[[EncodedFrame], None] = lambda _frame: None,
    ) -> None:
        super().__init__()
        self._plan = plan
        self._frames: AsyncIterator[EncodedFrame] = plan.source.frames()
        self._on_sent = on_sent
        self._need_keyframe = False
        self._asked = False
        # Capture time of the last keyframe sent, or asked for on the keyframes-only step.
        self._keyframe_at: float | None = None
        self.backlog: Callable[[], int] = lambda: 0
        self.last_frame: EncodedFrame | None = None
        self.dropped = 0

    async def next_encoded(self) -> tuple[bytes, int] | None:
        try:
            frame = await anext(self._frames)
        except StopAsyncIteration:
            self.stop()
            raise MediaStreamError from None
        if not self._passes(frame):
            self.dropped += 1
            return None
        self.last_frame = frame
        self._on_sent(frame)
        return frame.data, frame.pts

    def _passes(self, frame: EncodedFrame) -> bool:
        if frame.keyframe:
            self._keyframe_at = frame.captured_at
        if self._plan.keyframes_only and not frame.keyframe:
            last = self._keyframe_at
            if last is None or frame.captured_at - last >= KEYFRAMES_ONLY_INTERVAL_S:
                self._plan.source.request_keyframe()
                self._keyframe_at = frame.captured_at
            self._need_keyframe, self._asked = True, False
            return False
        if self.backlog() > MAX_SEND_BACKLOG:
            self._need_keyframe, self._asked = True, False
            return False
        if self._need_keyframe and not frame.keyframe:
            # A dropped frame breaks decoding until a keyframe: ask for one, once.
            if not self._asked:
                self._plan.source.request_keyframe()
                self._asked = True
            return False
        self._need_keyframe = self._asked = False
        return True

    def stop(self) -> None:
        super().stop()
        closer = getattr(self._frames, "aclose", None)
        if closer is not None:
            task = asyncio.get_running_loop().create_task(closer())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
