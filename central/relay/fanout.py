"""Fan-out of one stream's encoded frames to its viewers (pure: no I/O, no clock).

- Every viewer has a bounded queue. A viewer that falls behind loses whole frames only up
  to the next keyframe (a dropped encoded frame breaks decoding until one comes), and a
  keyframe is requested from the publisher.
- The frames since the last keyframe are cached, so a joining viewer starts at once. The
  cached burst is re-stamped to end just before the live edge, so the viewer's player does
  not play the old frames in real time and lag behind for good.
- Timestamps stay continuous for viewers when a publisher reconnects and restarts its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runtime.media import CLOCK_RATE, GopCache, KeyframeQueue

DEFAULT_QUEUE_FRAMES = 90
MAX_GOP_FRAMES = 600
KEYFRAME_REQUEST_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class RelayFrame:
    data: bytes
    pts: int
    keyframe: bool
    arrived: float | None = None


ViewerQueue = KeyframeQueue[RelayFrame]


class StreamFanout:
    def __init__(
        self, request_keyframe: Callable[[], None], queue_frames: int = DEFAULT_QUEUE_FRAMES
    ) -> None:
        self._request_keyframe = request_keyframe
        self._queue_frames = queue_frames
        self._viewers: list[ViewerQueue] = []
        self._gop: GopCache[RelayFrame] = GopCache(MAX_GOP_FRAMES)
        self._offset: int | None = 0
        self._last_pts: int | None = None
        self._frame_ticks = CLOCK_RATE // 30
        self._last_request = float("-inf")
        self.frames_in = 0
        self.bytes_in = 0
        self.bytes_in_live = 0

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    @property
    def latest_keyframe(self) -> RelayFrame | None:
        """The keyframe the cached GOP starts with: None before the first, after a loss,
        after the publisher restarted, or once the GOP grew too long to cache."""
        frames = self._gop.frames
        return frames[0] if frames else None

    def publisher_restarted(self) -> None:
        """The next frame starts a new publisher timeline: splice it onto the old one."""
        self._offset = None
        self.bytes_in_live = 0
        self._gop.clear()

    def lost_frames(self, now: float) -> None:
        """Frames from the publisher were lost (a link cut): what follows cannot be decoded
        until a keyframe, so viewers wait for one and one is asked for."""
        self._gop.clear()
        for viewer in self._viewers:
            viewer.waiting_for_keyframe = True
        self.keyframe_wanted(now)

    def publish(
        self, data: bytes, pts: int, keyframe: bool, now: float, arrived: float | None = None
    ) -> None:
        if self._offset is None:
            base = 0 if self._last_pts is None else self._last_pts + self._frame_ticks
            self._offset = base - pts
        out_pts = pts + self._offset
        if self._last_pts is not None and out_pts > self._last_pts:
            self._frame_ticks = min(out_pts - self._last_pts, CLOCK_RATE)
        self._last_pts = out_pts
        frame = RelayFrame(data, out_pts, keyframe, arrived)
        self.frames_in += 1
        self.bytes_in += len(data)
        self.bytes_in_live += len(data)
        self._gop.add(frame)
        wants = [viewer.offer(frame) for viewer in self._viewers]
        if any(wants):
            self.keyframe_wanted(now)

    def add_viewer(self, now: float, on_ready: Callable[[], None] = lambda: None) -> ViewerQueue:
        cached_gop = self._gop.frames
        viewer = ViewerQueue(
            maxsize=max(self._queue_frames, len(cached_gop) + 1), on_ready=on_ready
        )
        if cached_gop:
            live = cached_gop[-1].pts
            count = len(cached_gop)
            for index, cached in enumerate(cached_gop):
                # One tick apart, ending at the live edge: decoded at once, shown live.
                viewer.offer(RelayFrame(cached.data, live - (count - 1 - index), cached.keyframe))
            viewer.maxsize = self._queue_frames + count
        else:
            self.keyframe_wanted(now)
        self._viewers.append(viewer)
        return viewer

    def remove_viewer(self, viewer: ViewerQueue) -> None:
        if viewer in self._viewers:
            self._viewers.remove(viewer)

    def keyframe_wanted(self, now: float) -> None:
        """Ask the publisher for a keyframe, at most once per interval."""
        if now - self._last_request >= KEYFRAME_REQUEST_INTERVAL_S:
            self._last_request = now
            self._request_keyframe()
