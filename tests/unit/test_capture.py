"""The always-on camera: a new live stream starts at once from the GOP in progress."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from agent.capture import Capture
from firmware_bridge.filesource import FileVideoSource
from firmware_bridge.media import EncodedFrame
from tests.unit.test_video_sources import write_file


async def test_a_new_stream_starts_from_the_keyframe_of_the_gop_in_progress(
    tmp_path: Path,
) -> None:
    clip = tmp_path / "clip.mp4"
    write_file(clip, "h264", frames=120)  # one keyframe, then 119 frames: a long GOP
    seen: list[EncodedFrame] = []
    capture = Capture(FileVideoSource(clip, loop=False), seen.append)
    task = asyncio.create_task(capture.run())
    try:
        while len(seen) < 20:  # noqa: ASYNC110 (the capture has no event to wait on)
            await asyncio.sleep(0.02)
        stream = capture.frames()
        first = await asyncio.wait_for(anext(stream), 5)
        # Not the next keyframe (there is none for 3 s): the one the GOP started with.
        assert first.keyframe and first is seen[0]
        second = await asyncio.wait_for(anext(stream), 5)
        assert second is seen[1]
        await stream.aclose()  # type: ignore[attr-defined]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
