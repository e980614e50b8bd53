"""Device identity end to end, on the center's own supervised broker (mutual TLS, the
default): a code -> keys made on the gateway -> a certificate -> the agent online over mTLS
-> its evidence verifying with the key it enrolled; then revoked while connected: thrown
off within 5 s and marked offline, its reconnect, WHIP publishing and uploads refused, all
audited."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from agent.evidence.recorder import Recorder
from central.config import CentralSettings
from central.service import Central
from firmware_bridge.sim.synthetic import SyntheticCamera
from protocol.evidence import UnitKey
from protocol.upload import ENTRIES_ROUTE
from runtime.config import load_settings
from tests.center_tls import https_settings
from tests.helpers import wait_for
from tests.integration.center_helpers import LOOPBACK_ICE, api_client
from tests.integration.identity_helpers import (
    TECH,
    audited,
    center_with_own_broker,
    enroll_gateway,
    enrolled_agent,
    gateway_tls,
)
from tests.integration.test_evidence import offload, stored
from tests.integration.test_provisioning import CONNACK_ACCEPTED, mqtt_connect

REVOKED_WITHIN_S = 5.0


def record_clip(folder: Path, unit_id: str, key: UnitKey) -> tuple[str, Path]:
    """Three 1 s segments signed with `key`, closed; (recording id, recordings folder)."""
    camera = SyntheticCamera("h264", 192, 96, fps=10, keyframe_interval_s=1, bitrate=200_000)
    recorder = Recorder(folder, unit_id, key, segment_s=1)
    recording_id = recorder.start("button.record", "h264", 192, 96, 1000.0)
    for n in range(30):
        for frame in camera.encode_at(n, 1000.0 + n / 10):
            recorder.write(frame)
    recorder.stop()
    return recording_id, recorder.recordings


def first_entry(recordings: Path, recording_id: str) -> dict[str, object]:
    manifest = recordings / recording_id / "manifest.jsonl"
    entry: dict[str, object] = json.loads(manifest.read_text().splitlines()[0])
    return entry


async def test_an_enrolled_gateway_speaks_for_its_unit_until_revoked(
    unique: str, tmp_path: Path
) -> None:
    unit = f"P-{unique}"
    async with (
        center_with_own_broker(unique, tmp_path) as central,
        api_client(central) as http,
    ):
        assert central.mqtt_url.startswith("mqtts://")
        assert central.fleet is not None and central.relay is not None
        provisioning = central.provisioning
        assert provisioning is not None
        folder = tmp_path / "gateway"
        enrolled = await enroll_gateway(central, unit, folder)
        files = enrolled.files
        tls = gateway_tls(enrolled)
        fleet = central.fleet

        async with enrolled_agent(central, enrolled, folder) as agent:
            await wait_for(lambda: (r := fleet.registry.get(unit)) and r.online, timeout=15)

            # Its evidence, signed with the key made on the gateway, verifies at the center.
            key = UnitKey.from_bytes(files.evidence_key.read_bytes())
            recording_id, recordings = record_clip(tmp_path / "clips", unit, key)
            entry = first_entry(recordings, recording_id)
            await offload(central.api_url, recordings)
            await stored(http, recording_id)
            verdict = (await http.get(f"/api/v1/evidence/{recording_id}/verify")).json()
            assert verdict == {"recording_id": recording_id, "ok": True, "problems": []}

            # A key that is not the enrolled one cannot speak for the unit: refused, audited.
            forged_id, forged = record_clip(tmp_path / "forged", unit, UnitKey.generate())
            refused = await http.post(ENTRIES_ROUTE, json=first_entry(forged, forged_id))
            assert refused.status_code == 403, refused.text
            [forgery] = audited(central, "evidence.upload", unit)
            assert forgery.outcome == "refused" and forgery.detail["at"] == f"{forged_id}/0"

            # Revoked while connected, as `rtcc provision revoke` does it (in the database,
            # from another process): out within 5 s, offline at the center.
            revoked_at = time.monotonic()
            assert await asyncio.to_thread(provisioning.revoke, TECH, unit)
            await wait_for(lambda: not agent.link.connected.is_set(), timeout=REVOKED_WITHIN_S)
            assert time.monotonic() - revoked_at < REVOKED_WITHIN_S
            record = fleet.registry.get(unit)
            assert record is not None and record.online is False

        # Its certificate no longer opens the broker.
        assert await asyncio.to_thread(mqtt_connect, broker_port(central), tls, unit) != (
            CONNACK_ACCEPTED
        )
        # A WHIP token it still holds publishes nothing; its uploads are refused.
        now = time.time()
        token = central.relay.signer.issue("whip", f"{unit}-s1", now, 60, who=unit)
        for _ in range(3):  # a revoked unit retrying: refused each time, audited once a minute
            whip = await http.post(
                f"/whip/{unit}-s1",
                content=b"v=0\r\n",
                headers={"authorization": f"Bearer {token}", "content-type": "application/sdp"},
            )
            assert whip.status_code == 403, whip.text
        upload = await http.post(ENTRIES_ROUTE, json=entry | {"index": 99})
        assert upload.status_code == 403, upload.text
        assert [e.outcome for e in audited(central, "device.revoke", unit)] == ["ok"]
        assert [e.outcome for e in audited(central, "stream.publish", unit)] == ["refused"]
        assert [e.outcome for e in audited(central, "evidence.upload", unit)] == ["refused"] * 2


def broker_port(central: Central) -> int:
    assert central.broker is not None
    return central.broker.port


async def test_the_plain_broker_is_only_there_when_asked_for(unique: str, tmp_path: Path) -> None:
    settings = load_settings(
        CentralSettings,
        center_id=f"c-{unique}",
        data_dir=tmp_path / "center",
        http=https_settings(0),
        relay={"workers": 1, "ice": LOOPBACK_ICE},
        broker={"mtls": False},
    )
    central = Central(settings)
    await central.start()
    try:
        assert central.mqtt_url.startswith("mqtt://")
        assert central.center_broker is not None and central.center_broker.access is None
        await central.wait_connected()
    finally:
        await central.stop()
