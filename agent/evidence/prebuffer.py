"""The pre-event buffer: the last N seconds of encoded video, whole GOPs only, so a
recording that starts now begins N seconds ago at a keyframe, and the sound of the same
span where the source has it. Pure and bounded."""

from __future__ import annotations

from collections import deque

from firmware_bridge.media import EncodedAudio, EncodedFrame


class PreEventBuffer:
    def __init__(self, seconds: float, max_bytes: int) -> None:
        if seconds < 0 or max_bytes <= 0:
            raise ValueError("need seconds >= 0 and max_bytes > 0")
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._gops: deque[list[EncodedFrame]] = deque()
        self._audio: deque[EncodedAudio] = deque()
        self.bytes = 0
        self.dropped_gops = 0  # evicted for the byte bound before they were N seconds old
        self.skipped_frames = 0  # arrived before any keyframe: undecodable on their own

    def push(self, frame: EncodedFrame) -> None:
        if self.seconds == 0:
            return
        if frame.keyframe:
            self._gops.append([])
        elif not self._gops:
            self.skipped_frames += 1
            return
        self._gops[-1].append(frame)
        self.bytes += len(frame.data)
        horizon = frame.captured_at - self.seconds
        # Keep the newest GOP that starts at or before the horizon: it covers the full span.
        while len(self._gops) > 1 and self._gops[1][0].captured_at <= horizon:
            self._evict()
        while self.bytes > self.max_bytes and len(self._gops) > 1:
            self._evict()
            self.dropped_gops += 1

    def push_audio(self, packet: EncodedAudio) -> None:
        if self.seconds == 0 or not self._gops:
            return  # nothing to play it against
        self._audio.append(packet)
        self.bytes += len(packet.data)

    def _evict(self) -> None:
        self.bytes -= sum(len(f.data) for f in self._gops.popleft())
        start = self._gops[0][0].captured_at
        while self._audio and self._audio[0].captured_at < start:
            self.bytes -= len(self._audio.popleft().data)

    def span_s(self) -> float:
        if not self._gops:
            return 0.0
        return self._gops[-1][-1].captured_at - self._gops[0][0].captured_at

    def frames(self) -> list[EncodedFrame]:
        """Everything buffered, oldest first, starting at a keyframe."""
        return [frame for gop in self._gops for frame in gop]

    def audio(self) -> list[EncodedAudio]:
        """The sound of the same span, oldest first."""
        return list(self._audio)
