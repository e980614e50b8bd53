"""The relay on loopback: WHIP in, WHEP out, pass-through, GOP cache, tokens."""

import asyncio
import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest
from aiortc.codecs import h264, vpx

from agent.publisher import PublishRefused, WhipPublisher
from firmware_bridge.media import VideoCodec
from firmware_bridge.sim.synthetic import SyntheticCamera
from tests.helpers import wait_for
from tests.integration.relay_helpers import (
    CONFIG,
    SIGNER,
    RelayViewer,
    publishing,
    relay_server,
    viewer_token,
)


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_two_viewers_pass_through_and_one_leaves(
    codec: VideoCodec, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = {"decoders": 0, "encodes": 0}

    def count(key: str, original: object) -> object:
        def wrapper(*args: object, **kwargs: object) -> object:
            made[key] += 1
            return original(*args, **kwargs)  # type: ignore[operator]

        return wrapper

    for decoder in (h264.H264Decoder, vpx.Vp8Decoder):
        monkeypatch.setattr(decoder, "__init__", count("decoders", decoder.__init__))
    for encoder in (h264.H264Encoder, vpx.Vp8Encoder):
        monkeypatch.setattr(encoder, "encode", count("encodes", encoder.encode))

    camera = SyntheticCamera(codec, 320, 240, fps=30, keyframe_interval_s=2)
    async with relay_server() as (base, relay), publishing(base, "s1", camera):
        viewers = [RelayViewer(codec), RelayViewer(codec)]
        for viewer in viewers:
            assert (await viewer.join(base, "s1", viewer_token("s1"))).status_code == 201
        await wait_for(lambda: all(len(v.stamps) > 20 for v in viewers), timeout=15)
        assert all(v.sizes == {(320, 240)} for v in viewers)
        await viewers[0].leave(viewer_token("s1"))
        seen = len(viewers[1].stamps)
        await wait_for(lambda: len(viewers[1].stamps) > seen + 20, timeout=10)
        numbers = [s.frame_no for s, _ in viewers[1].stamps]
        assert numbers == sorted(numbers)
        assert len(relay.streams["s1"].viewers) == 1
        await viewers[1].close()
    # Pass-through: no picture was decoded or encoded anywhere on the media path.
    assert made == {"decoders": 0, "encodes": 0}


async def test_joining_viewer_starts_from_the_gop_cache() -> None:
    camera = SyntheticCamera("vp8", 320, 240, fps=30, keyframe_interval_s=10)
    async with relay_server() as (base, _relay), publishing(base, "gop", camera):
        await asyncio.sleep(2.0)  # well past the first keyframe, far from the next one
        viewer = RelayViewer("vp8")
        asked = time.time()
        assert (await viewer.join(base, "gop", viewer_token("gop"))).status_code == 201
        await wait_for(lambda: viewer.first_frame_at is not None, timeout=5)
        assert viewer.first_frame_at is not None
        assert viewer.first_frame_at - asked < 2.0  # the next keyframe is ~8 s away
        await viewer.close()


async def test_tokens_are_checked_before_any_peer_connection() -> None:
    camera = SyntheticCamera("vp8", 320, 240)
    async with relay_server() as (base, relay), publishing(base, "t1", camera):
        offer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
        now = time.time()
        cases = {
            None: 401,
            "Basic dXNlcjpwdw==": 401,
            "Bearer garbage": 401,
            f"Bearer {SIGNER.issue('whep', 't1', now - 600, 60)}": 401,
            f"Bearer {SIGNER.issue('whep', 'other', now, 60)}": 403,
            f"Bearer {SIGNER.issue('whip', 't1', now, 60)}": 403,
        }
        async with httpx.AsyncClient() as http:
            for header, status in cases.items():
                headers = {"Content-Type": "application/sdp"}
                if header is not None:
                    headers["Authorization"] = header
                response = await http.post(f"{base}/whep/t1", content=offer, headers=headers)
                assert response.status_code == status, (header, response.text)
            assert not relay.streams["t1"].viewers
            good = {
                "Content-Type": "application/sdp",
                "Authorization": f"Bearer {viewer_token('t1')}",
            }
            bad_sdp = await http.post(f"{base}/whep/t1", content="hello", headers=good)
            assert bad_sdp.status_code == 400
            broken = await http.post(
                f"{base}/whep/t1", content="v=0\r\nm=video x\r\n", headers=good
            )
            assert broken.status_code == 400
            missing = await http.post(
                f"{base}/whep/nope",
                content=offer,
                headers={
                    "Content-Type": "application/sdp",
                    "Authorization": f"Bearer {viewer_token('nope')}",
                },
            )
            assert missing.status_code == 404


async def test_publisher_with_a_bad_token_is_refused() -> None:
    async with relay_server() as (base, _relay):
        token = SIGNER.issue("whep", "p1", time.time(), 60)
        publisher = WhipPublisher(
            f"{base}/whip/p1", token, SyntheticCamera("vp8", 320, 240), CONFIG
        )
        with pytest.raises(PublishRefused):
            await asyncio.wait_for(publisher.run(), 10)


async def test_publisher_rebuilds_and_viewers_go_on_without_reload() -> None:
    camera = SyntheticCamera("vp8", 320, 240, fps=30, keyframe_interval_s=1)
    async with relay_server() as (base, relay), publishing(base, "re", camera) as publisher:
        viewer = RelayViewer("vp8")
        assert (await viewer.join(base, "re", viewer_token("re"))).status_code == 201
        await wait_for(lambda: len(viewer.stamps) > 15, timeout=10)
        # The relay loses the publisher's connection (as after a network change).
        session = relay.streams["re"].publisher_session
        assert session is not None
        await relay.end("re", session)
        before = len(viewer.stamps)
        await wait_for(lambda: publisher.sessions == 2 and publisher.connected.is_set(), timeout=15)
        await wait_for(lambda: len(viewer.stamps) > before + 15, timeout=10)
        assert viewer.pc.connectionState == "connected"
        resumed = [s.frame_no for s, _ in viewer.stamps[before:]]
        assert resumed[-1] > resumed[0]
        await viewer.close()


@contextlib.contextmanager
def rsa_certificates() -> Iterator[None]:
    """Peers made inside present an RSA DTLS certificate, as GStreamer 1.22 does."""
    from aiortc.rtcdtlstransport import RTCCertificate, generate_certificate
    from cryptography.hazmat.primitives.asymmetric import rsa

    original = RTCCertificate.generateCertificate

    def rsa_certificate(cls: type[RTCCertificate]) -> RTCCertificate:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(key=key, cert=generate_certificate(key))  # type: ignore[arg-type]

    setattr(RTCCertificate, "generateCertificate", classmethod(rsa_certificate))  # noqa: B010
    try:
        yield
    finally:
        setattr(RTCCertificate, "generateCertificate", original)  # noqa: B010


async def test_a_viewer_with_an_rsa_certificate_is_served() -> None:
    camera = SyntheticCamera("vp8", 320, 240)
    async with relay_server() as (base, _relay), publishing(base, "rsa", camera):
        with rsa_certificates():
            viewer = RelayViewer("vp8")
        # The offering viewer is the DTLS server here, so its RSA certificate decides the
        # cipher suites: aiortc's ECDSA-only list would fail with "no shared cipher".
        assert (await viewer.join(base, "rsa", viewer_token("rsa"))).status_code == 201
        await wait_for(lambda: len(viewer.stamps) > 5, timeout=10)
        await viewer.close()
