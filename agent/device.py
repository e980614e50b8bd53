"""The unit's status as the center sees it: the vehicle's report, with what the body-cam
says over its link laid on top. Pure."""

from __future__ import annotations

from dataclasses import replace

from firmware_bridge.device import DeviceStatus
from firmware_bridge.link.bodycam import BodycamState


def with_bodycam(vehicle: DeviceStatus, camera: BodycamState, now: float) -> DeviceStatus:
    if not camera.connected(now):
        return replace(vehicle, camera_connected=False, recording=False)
    assert camera.hello is not None  # connected() implies a HELLO
    status = replace(
        vehicle,
        model=camera.hello.model,
        firmware=camera.hello.firmware,
        camera_connected=True,
        recording=camera.recording,
    )
    if camera.battery is not None:
        status = replace(status, battery_pct=float(camera.battery.percent))
    if camera.storage is not None:
        status = replace(
            status,
            storage_free_bytes=camera.storage.free_mb * 2**20,
            storage_total_bytes=camera.storage.total_mb * 2**20,
        )
    return status
