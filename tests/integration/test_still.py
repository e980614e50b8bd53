"""A still of a live stream through the relay's front: a real worker process, a real aiortc
publisher, the latest keyframe decoded once at the worker into a JPEG."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import av
import httpx
import pytest

from agent.publisher import WhipPublisher
from central.config import RelaySettings, TokenKeys
from central.errors import Invalid, NotFound
from central.relay_front import RelayFront
from firmware_bridge.media import VideoCodec
from firmware_bridge.sim.synthetic import SyntheticCamera
from runtime.config import IceSettings, LogSettings
from tests.integration.relay_helpers import CONFIG

KEYS = TokenKeys(keys={"k1": base64.b64encode(b"s" * 32).decode()}, current="k1")


@contextlib.asynccontextmanager
async def running_front(**relay: Any) -> AsyncIterator[RelayFront]:
    """The relay's front with one worker on loopback, `relay` settings on top."""
    settings = RelaySettings(workers=1, ice=IceSettings(host_addresses=["127.0.0.1"]), **relay)
    front = RelayFront(settings, KEYS, LogSettings(level="warning"))
    workers = asyncio.create_task(front.run())
    try:
        await front.wait_ready()
        yield front
    finally:
        workers.cancel()
        await asyncio.gather(workers, return_exceptions=True)
        await front.close()


@pytest.fixture
async def front() -> AsyncIterator[RelayFront]:
    async with running_front() as running:
        yield running


@contextlib.asynccontextmanager
async def publishing(
    front: RelayFront, stream_id: str, camera: SyntheticCamera
) -> AsyncIterator[None]:
    token = front.signer.issue("whip", stream_id, time.time(), 300)
    url = front.worker_url(stream_id, f"/whip/{stream_id}")
    publisher = WhipPublisher(url, token, camera, CONFIG)
    task = asyncio.create_task(publisher.run())
    try:
        assert await front.wait_live(stream_id, time.time() + 15)
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    decoder = av.CodecContext.create("mjpeg", "r")
    pictures = decoder.decode(av.Packet(jpeg)) or decoder.decode(None)
    return pictures[0].width, pictures[0].height


@pytest.mark.parametrize(("codec", "width", "height"), [("h264", 640, 360), ("vp8", 320, 240)])
async def test_still_of_a_live_stream_is_a_jpeg_of_its_size(
    front: RelayFront, codec: VideoCodec, width: int, height: int
) -> None:
    camera = SyntheticCamera(codec, width, height, fps=30, keyframe_interval_s=1)
    async with publishing(front, "cam1", camera):
        jpeg = await front.still_jpeg("cam1")
        assert jpeg.startswith(b"\xff\xd8")
        assert jpeg_size(jpeg) == (width, height)
        # Asked together, they all get one.
        together = await asyncio.gather(*(front.still_jpeg("cam1") for _ in range(3)))
        assert all(jpeg_size(one) == (width, height) for one in together)
    with pytest.raises(NotFound):
        await front.still_jpeg("nobody")
    with pytest.raises(Invalid):
        await front.still_jpeg("../streams")


async def test_the_workers_still_route_takes_the_centers_token_for_that_stream(
    front: RelayFront,
) -> None:
    camera = SyntheticCamera("vp8", 320, 240, fps=30, keyframe_interval_s=1)
    async with publishing(front, "cam2", camera), httpx.AsyncClient() as http:
        url = front.worker_url("cam2", "/streams/cam2/still")
        now = time.time()
        cases = {
            None: 401,
            f"Bearer {front.signer.issue('whep', 'cam2', now - 600, 60)}": 401,
            f"Bearer {front.signer.issue('whep', 'other', now, 60)}": 403,
            f"Bearer {front.signer.issue('whip', 'cam2', now, 60)}": 403,
            f"Bearer {front.signer.issue('whep', 'cam2', now, 60, 'center')}": 200,
        }
        for header, status in cases.items():
            headers = {} if header is None else {"authorization": header}
            answer = await http.get(url, headers=headers)
            assert answer.status_code == status, (header, answer.text)
        assert answer.headers["content-type"] == "image/jpeg"
