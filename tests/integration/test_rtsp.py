"""The RTSP source against a real RTSP server (GStreamer's): H.264 passed through untouched,
and a reconnect after the server restarts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import av

from central.broker import free_port
from firmware_bridge.live import LiveVideoSource, rtsp_source, v4l2_source
from firmware_bridge.media import EncodedAudio, EncodedFrame
from firmware_bridge.sim.bodycam_server import RTSP_CAMERA
from runtime.process import die_with_parent
from tests.helpers import wait_for


@asynccontextmanager
async def rtsp_server(port: int) -> AsyncIterator[None]:
    process = await asyncio.create_subprocess_exec(
        "/usr/bin/python3",
        str(RTSP_CAMERA),
        str(port),
        stdout=asyncio.subprocess.PIPE,
        preexec_fn=die_with_parent,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        assert json.loads(line) == {"ready": True}
        yield
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def take(frames: AsyncIterator[EncodedFrame], count: int) -> list[EncodedFrame]:
    got = []
    async for frame in frames:
        got.append(frame)
        if len(got) == count:
            break
    return got


def decodes(frames: list[EncodedFrame]) -> int:
    decoder: Any = av.CodecContext.create("h264", "r")
    return sum(len(decoder.decode(av.Packet(f.data))) for f in frames)


async def test_rtsp_pass_through_and_reconnect_after_a_server_restart() -> None:
    port = free_port()
    source = rtsp_source(f"rtsp://127.0.0.1:{port}/cam", retry_delay=lambda _n: 0.2)
    sound: list[EncodedAudio] = []
    source.audio_sink = sound.append
    frames = source.frames()
    try:
        async with rtsp_server(port):
            first = await asyncio.wait_for(take(frames, 45), 30)
        assert (source.width, source.height) == (320, 240)
        # The camera's microphone comes through too, untouched (AAC).
        assert source.audio is not None and source.audio.codec == "aac" and sound
        keyframes = [i for i, f in enumerate(first) if f.keyframe]
        assert keyframes, "no keyframe in 1.5 s of a 1 s GOP"
        # Pass-through: the bytes decode as they are, from the first keyframe on.
        assert decodes(first[keyframes[0] :]) == len(first) - keyframes[0]
        async with rtsp_server(port):
            again = await asyncio.wait_for(take(frames, 45), 40)
        assert source.connects >= 2 and source.failures >= 1
        start = next(i for i, f in enumerate(again) if f.keyframe)
        assert decodes(again[start:]) == len(again) - start
    finally:
        await frames.aclose()  # type: ignore[attr-defined]


async def test_a_missing_camera_is_retried_with_backoff_not_fatal() -> None:
    delays: list[int] = []

    def retry_delay(attempt: int) -> float:
        delays.append(attempt)
        return 0.01

    for source in (
        v4l2_source("/dev/video-missing", retry_delay, 640, 480, 30),
        rtsp_source(f"rtsp://127.0.0.1:{free_port()}/cam", retry_delay),
    ):
        assert isinstance(source, LiveVideoSource)
        delays.clear()
        frames = source.frames()
        task = asyncio.ensure_future(anext(frames))
        await wait_for(lambda: len(delays) >= 3, timeout=10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert delays[:3] == [0, 1, 2] and source.connects == 0
