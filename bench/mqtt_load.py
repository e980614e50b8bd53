"""A lean MQTT 3.1.1 load generator: thousands of unit connections from one process, each
publishing a valid `state` message (QoS 1) once a second, spread evenly over the second.

Written on raw asyncio streams because a paho client per simulated unit would make the
generator, not the system under test, the bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
import uuid

from protocol import CameraStatus, Health, Position, UnitState, Versions


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: bytes) -> bytes:
    return struct.pack("!H", len(text)) + text


def connect_packet(client_id: str, keepalive: int = 60) -> bytes:
    body = _string(b"MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive)
    body += _string(client_id.encode())
    return b"\x10" + _varint(len(body)) + body


def publish_packet(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    body = _string(topic) + struct.pack("!H", packet_id) + payload
    return b"\x32" + _varint(len(body)) + body


def state_body(n: int) -> bytes:
    state = UnitState(
        position=Position(
            lat=40.7 + n * 1e-5, lon=-74.0, speed_mps=9.0, heading_deg=90.0, fix_ts=time.time()
        ),
        battery_pct=80.0,
        camera=CameraStatus(connected=True, model="bench"),
        versions=Versions(agent="bench"),
        uptime_s=1.0,
        health=Health(outbox_rows=0, outbox_dropped=0, mqtt_connects=1, commands_rejected=0),
    )
    return state.model_dump_json().encode()


class Unit:
    def __init__(self, unit_id: str, body: bytes) -> None:
        self.unit_id = unit_id
        self.topic = f"rtcc/v1/units/{unit_id}/state".encode()
        self.body = body
        self.seq = 0
        self.writer: asyncio.StreamWriter | None = None
        self.reader_task: asyncio.Task[None] | None = None

    async def connect(self, host: str, port: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(connect_packet(self.unit_id))
        connack = await reader.readexactly(4)
        if connack[3] != 0:
            raise RuntimeError(f"{self.unit_id}: CONNACK {connack!r}")
        self.writer = writer
        self.reader_task = asyncio.create_task(self._drain_acks(reader))

    async def _drain_acks(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass

    def publish(self) -> None:
        assert self.writer is not None
        self.seq += 1
        payload = (
            (
                f'{{"v":1,"id":"{uuid.uuid4()}","sid":1,"seq":{self.seq},"ts":{time.time()},"body":'
            ).encode()
            + self.body
            + b"}"
        )
        self.writer.write(publish_packet(self.topic, self.seq % 65535 + 1, payload))

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.write(b"\xe0\x00")
            self.writer.close()
            await asyncio.gather(self.writer.wait_closed(), return_exceptions=True)
        if self.reader_task is not None:
            self.reader_task.cancel()
            await asyncio.gather(self.reader_task, return_exceptions=True)


async def run_load(host: str, port: int, units: int, seconds: float, prefix: str) -> int:
    """Connect `units` units, publish at 1 msg/s each for `seconds`; returns messages sent."""
    body = state_body(0)
    fleet = [Unit(f"{prefix}-{n:05d}", body) for n in range(units)]
    for start in range(0, units, 200):
        await asyncio.gather(*(u.connect(host, port) for u in fleet[start : start + 200]))
    ticks_per_s = 100
    sent = 0
    began = time.monotonic()
    tick = 0
    while time.monotonic() - began < seconds:
        slot = tick % ticks_per_s
        for unit in fleet[slot::ticks_per_s]:
            unit.publish()
            sent += 1
        tick += 1
        delay = began + tick / ticks_per_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.gather(*(u.close() for u in fleet))
    return sent


def main() -> None:
    import sys

    host, port, units, seconds, prefix = sys.argv[1:6]
    sent = asyncio.run(run_load(host, int(port), int(units), float(seconds), prefix))
    print(json.dumps({"sent": sent}))


if __name__ == "__main__":
    main()
