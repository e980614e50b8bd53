"""`rtcc bodycam-sim` as a real process, the way a body-cam sits on a gateway: its link over
TCP, its video over RTSP. The agent takes both; a holster draw records the RTSP video."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from pathlib import Path

import av

from central.broker import free_port
from tests.helpers import json_line, python_module, running_agent, wait_for
from tests.integration.bodycam_helpers import wait_for_state


async def test_the_agent_records_the_body_cams_rtsp_video_on_a_trigger(
    broker_url: str, unique: str, tmp_path: Path
) -> None:
    sim = await python_module(
        "rtcc", "bodycam-sim", "--listen", "tcp://127.0.0.1:0", "--control", "127.0.0.1:0",
        "--rtsp-port", str(free_port()), "--video-size", "320x240",
    )  # fmt: skip
    try:
        ready = await json_line(sim)
        async with running_agent(
            f"u-{unique}",
            broker_url,
            tmp_path / "agent",
            device={"link": ready["link"]},
            video={"source": "rtsp", "url": ready["video"]},
            evidence={"enabled": True, "pre_event_s": 2, "segment_s": 1},
        ) as agent:
            evidence = agent.evidence
            assert evidence is not None
            await wait_for_state(agent, lambda s: s.camera.connected, timeout=10)
            await wait_for(lambda: evidence.prebuffer.span_s() >= 2, timeout=20)
            host, port = ready["control"].rsplit(":", 1)
            with socket.create_connection((host, int(port))) as control:
                control.sendall(b"trigger holster_draw\n")
                assert json.loads(control.makefile().readline())["ok"]
            await wait_for(lambda: evidence.recorder.segments_written >= 3, timeout=15)
            recording_id = evidence.stop_recording()
        folder = tmp_path / "agent" / "evidence" / "recordings" / str(recording_id)
        segments = sorted(folder.glob("*.mp4"))
        assert len(segments) >= 4
        for segment in segments:
            with av.open(str(segment)) as container:
                stream = container.streams.video[0]
                assert (stream.codec_context.width, stream.codec_context.height) == (320, 240)
                frames = sum(len(stream.codec_context.decode(p)) for p in container.demux(stream))
                assert frames > 0
    finally:
        sim.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(sim.communicate(), 15)
    assert sim.returncode == 0
    assert b"Traceback" not in stderr
