"""A lean MQTT 3.1.1 load generator: thousands of unit connections from one process, each
publishing a valid `state` message (QoS 1) once a second, spread evenly over the second.

Written on raw asyncio streams because a paho client per simulated unit would make the
generator, not the system under test, the bottleneck.

With `--certs DIR` every unit connects over mutual TLS with its own certificate and key
(`DIR/{unit_id}.pem`, bench/pki.py), as an enrolled gateway does. Every unit is connected
before the first message is sent, and the generator says so on stdout (one JSON line) so that
the benchmark's window measures the steady state, not thousands of TLS handshakes.
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.sslproto
import json
import ssl
import struct
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

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

    async def connect(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=tls, server_hostname=host if tls is not None else None
        )
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


# asyncio's TLS transport gives each connection a 256 KiB read buffer, filled in full when
# made: 1.3 GB for 5,000 units that read nothing but 4-byte acks. A TLS record is at most
# 16 KiB; a smaller buffer only means more reads for bulk data, which the units never get.
TLS_READ_BUFFER = 16 * 1024


class UnitCerts:
    """Each unit's TLS context: the device CA to check the broker by, the unit's own
    certificate and key. One context per unit, since a context holds one client certificate."""

    def __init__(self, ca_file: Path, certs_dir: Path) -> None:
        self.ca_pem = ca_file.read_text()
        self.certs_dir = certs_dir

    def context(self, unit_id: str) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=self.ca_pem)
        context.load_cert_chain(self.certs_dir / f"{unit_id}.pem")
        return context


async def connect_all(
    fleet: list[Unit], host: str, port: int, certs: UnitCerts | None, concurrency: int
) -> None:
    """Every unit connected, at most `concurrency` handshakes at a time: the broker's listen
    backlog is not flooded, and a TLS context is made just before its connection."""
    gate = asyncio.Semaphore(concurrency)

    async def connect(unit: Unit) -> None:
        async with gate:
            tls = certs.context(unit.unit_id) if certs is not None else None
            await unit.connect(host, port, tls)

    await asyncio.gather(*(connect(unit) for unit in fleet))


async def run_load(
    host: str,
    port: int,
    units: int,
    seconds: float,
    prefix: str,
    certs: UnitCerts | None = None,
    concurrency: int = 200,
    connected: Callable[[float], None] = lambda _s: None,
) -> int:
    """Connect `units` units (then `connected(seconds it took)`), publish at 1 msg/s each for
    `seconds`; returns messages sent."""
    body = state_body(0)
    fleet = [Unit(f"{prefix}-{n:05d}", body) for n in range(units)]
    began = time.monotonic()
    await connect_all(fleet, host, port, certs, concurrency)
    connected(time.monotonic() - began)
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


def _say(**fields: float) -> None:
    print(json.dumps(fields), flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench.mqtt_load", description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("units", type=int)
    parser.add_argument("seconds", type=float, help="of publishing, once every unit is connected")
    parser.add_argument("prefix", help="unit ids are {prefix}-00000, {prefix}-00001, ...")
    parser.add_argument("--ca", type=Path, help="the device CA (PEM): connect over mutual TLS")
    parser.add_argument("--certs", type=Path, help="{unit_id}.pem: each unit's cert and key")
    parser.add_argument("--concurrency", type=int, default=200, help="connections at a time")
    args = parser.parse_args(argv)
    if (args.ca is None) != (args.certs is None):
        parser.error("--ca and --certs go together")
    certs = UnitCerts(args.ca, args.certs) if args.ca is not None else None
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER
    sent = asyncio.run(
        run_load(
            args.host,
            args.port,
            args.units,
            args.seconds,
            args.prefix,
            certs,
            args.concurrency,
            lambda took: _say(connected=args.units, connect_s=took),
        )
    )
    _say(sent=sent)


if __name__ == "__main__":
    main(sys.argv[1:])
