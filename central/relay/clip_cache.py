"""Rewind clips at the center while players read them (pure: no I/O, no clock).

A browser plays a clip through HTTP range requests: every range of one clip must come
from the same bytes, and muxing the clip again for each range would cost the relay a
remux each time. So a clip is kept under the window it was asked for while it is used,
and a little after; bounded in bytes over all clips (the least recently used goes first).
Each clip also remembers who it was audited for: one record per person per clip, not
one per range.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

from central.relay.rewind_models import Clip


@dataclass(slots=True)
class _Kept:
    clip: Clip
    used_at: float
    audited: set[Hashable] = field(default_factory=set)


class ClipCache:
    def __init__(self, max_bytes: int, keep_s: float) -> None:
        self.max_bytes = max_bytes
        self.keep_s = keep_s
        self.bytes = 0
        self._kept: OrderedDict[Hashable, _Kept] = OrderedDict()

    def get(self, key: Hashable, now: float) -> Clip | None:
        """The clip kept under `key`, unless unused for `keep_s`; using it keeps it longer."""
        self._expire(now)
        kept = self._kept.get(key)
        if kept is None:
            return None
        kept.used_at = now
        self._kept.move_to_end(key)
        return kept.clip

    def put(self, key: Hashable, clip: Clip, now: float) -> None:
        """Keep `clip` under `key` (a clip larger than the whole bound is not kept)."""
        self._drop(key)
        if len(clip.data) > self.max_bytes:
            return
        self._kept[key] = _Kept(clip, now)
        self.bytes += len(clip.data)
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._kept)))

    def first_view(self, key: Hashable, viewer: Hashable) -> bool:
        """True the first time `viewer` asks for the clip kept under `key` (and whenever
        it is not kept): the view is audited then."""
        kept = self._kept.get(key)
        if kept is None:
            return True
        if viewer in kept.audited:
            return False
        kept.audited.add(viewer)
        return True

    def forget_view(self, key: Hashable, viewer: Hashable) -> None:
        """The view could not be audited: the next request is its first again."""
        kept = self._kept.get(key)
        if kept is not None:
            kept.audited.discard(viewer)

    def _expire(self, now: float) -> None:
        while self._kept:
            key, kept = next(iter(self._kept.items()))
            if now - kept.used_at < self.keep_s:
                return
            self._drop(key)

    def _drop(self, key: Hashable) -> None:
        kept = self._kept.pop(key, None)
        if kept is not None:
            self.bytes -= len(kept.clip.data)


class RangeNotSatisfiable(ValueError):
    """No byte of the range is in the body."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first and last byte a `Range` header asks for in a body of `size` bytes; None
    for the whole body (no header, one it does not understand, or several ranges, which
    a server may answer whole: RFC 9110 14.2). RangeNotSatisfiable when none of it exists."""
    if header is None or not header.startswith("bytes=") or "," in header:
        return None
    first, dash, last = header.removeprefix("bytes=").strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()):
        return None
    if not first:
        length = int(last)  # the last `length` bytes
        if length == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - length), size - 1
    if last and not last.isdigit():
        return None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None  # invalid: ignored, the whole body is sent
    if start >= size:
        raise RangeNotSatisfiable(header)
    return start, end
