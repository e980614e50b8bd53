"""Another WebRTC stack against the relay: Debian's GStreamer 1.22 webrtcbin, as a WHEP viewer
and as a WHIP publisher. webrtcbin presents an RSA DTLS certificate and uses libnice for ICE,
so this proves the relay is not only talking to aiortc and Chromium."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from firmware_bridge.media import VideoCodec
from firmware_bridge.sim.synthetic import SyntheticCamera
from runtime.process import die_with_parent
from tests.helpers import wait_for
from tests.integration.relay_helpers import (
    SIGNER,
    RelayViewer,
    publishing,
    relay_server,
    viewer_token,
)

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has python3-gst-1.0
PEER = Path(__file__).parent.parent / "gst" / "webrtc_peer.py"


@asynccontextmanager
async def gstreamer_peer(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        SYSTEM_PYTHON,
        str(PEER),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=die_with_parent,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_gstreamer_viewer_decodes_the_relayed_stream(codec: VideoCodec) -> None:
    camera = SyntheticCamera(codec, 320, 240, fps=30, keyframe_interval_s=2)
    async with relay_server() as (base, relay), publishing(base, "gv", camera):
        token = viewer_token("gv")
        async with gstreamer_peer(
            "whep", f"{base}/whep/gv", token, "--codec", codec, "--frames", "60"
        ) as peer:
            stdout, stderr = await asyncio.wait_for(peer.communicate(), 40)
        assert peer.returncode == 0, stderr.decode()[-2000:]
        result = json.loads(stdout.decode().strip().splitlines()[-1])
        assert result == {"frames": 60, "width": 320, "height": 240}
        # The viewer's DELETE ended its session on the relay.
        await wait_for(lambda: not relay.streams["gv"].viewers, timeout=5)


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_gstreamer_publisher_reaches_an_aiortc_viewer(codec: VideoCodec) -> None:
    async with relay_server() as (base, relay):
        token = SIGNER.issue("whip", "gp", time.time(), 300)
        async with gstreamer_peer(
            "whip", f"{base}/whip/gp", token, "--codec", codec, "--seconds", "60"
        ) as peer:
            assert peer.stdout is not None
            line = await asyncio.wait_for(peer.stdout.readline(), 20)
            assert json.loads(line) == {"published": True}
            await wait_for(lambda: "gp" in relay.streams, timeout=10)
            viewer = RelayViewer(codec)
            assert (await viewer.join(base, "gp", viewer_token("gp"))).status_code == 201
            await wait_for(lambda: viewer.frames >= 30, timeout=15)
            assert viewer.sizes == {(320, 240)}
            await viewer.close()
