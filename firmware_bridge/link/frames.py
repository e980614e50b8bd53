"""Framing of the body-cam link: sans-IO, bytes in, messages out (see PROTOCOL.md).

    magic 0xB0 0xCA | version u8 | type u8 | seq u16 | length u16 | CRC-8 u8 | payload | CRC-32 u32

Big-endian. The CRC-8 (polynomial 0x07) covers version..length, so a false magic inside
other bytes is rejected at once instead of waiting for a length's worth of data; the CRC-32
(IEEE 802.3, as zlib.crc32) covers version..length and the payload. The parser never
raises on input: garbage, bad CRCs, oversize lengths, unknown versions or types and bad
payloads are skipped, counted, and it resynchronises on the next magic.
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from dataclasses import dataclass

from pydantic import ValidationError

from firmware_bridge.link.messages import MESSAGE_TYPES, LinkMessage, PayloadError

MAGIC = b"\xb0\xca"
VERSION = 1
MAX_PAYLOAD = 1024
HEADER = struct.Struct(">2sBBHHB")
CRC = struct.Struct(">I")
OVERHEAD = HEADER.size + CRC.size
MAX_FRAME = OVERHEAD + MAX_PAYLOAD


def _crc8_table() -> bytes:
    table = bytearray(256)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table[byte] = crc
    return bytes(table)


CRC8_TABLE = _crc8_table()


def crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = CRC8_TABLE[crc ^ byte]
    return crc


@dataclass(frozen=True, slots=True)
class Frame:
    seq: int
    message: LinkMessage


def encode(message: LinkMessage, seq: int) -> bytes:
    payload = message.pack()
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    fields = HEADER.pack(MAGIC, VERSION, message.TYPE, seq & 0xFFFF, len(payload), 0)[2:-1]
    header = MAGIC + fields + bytes([crc8(fields)])
    return header + payload + CRC.pack(zlib.crc32(fields + payload))


class FrameParser:
    """Feed it whatever the transport read; it returns the complete, valid frames.

    `errors` counts by reason: garbage (bytes skipped outside any frame), bad_header,
    bad_crc, oversize, bad_version, unknown_type, bad_payload. The buffer never holds more than one
    maximal frame."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.errors: Counter[str] = Counter()
        self.frames = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        out: list[Frame] = []
        buffer = self._buffer
        while self._sync() and len(buffer) >= HEADER.size:
            _, version, kind, seq, length, header_crc = HEADER.unpack_from(buffer)
            fields = bytes(buffer[2 : HEADER.size - 1])
            if crc8(fields) != header_crc:
                self._skip_magic("bad_header")
                continue
            if length > MAX_PAYLOAD:
                self._skip_magic("oversize")
                continue
            end = HEADER.size + length + CRC.size
            if len(buffer) < end:
                break
            (crc,) = CRC.unpack_from(buffer, end - CRC.size)
            if zlib.crc32(buffer[HEADER.size : end - CRC.size], zlib.crc32(fields)) != crc:
                # The frame may have started inside this false one: look again past the magic.
                self._skip_magic("bad_crc")
                continue
            payload = bytes(buffer[HEADER.size : end - CRC.size])
            del buffer[:end]
            frame = self._decode(version, kind, seq, payload)
            if frame is not None:
                out.append(frame)
        return out

    def _sync(self) -> bool:
        """Drop what comes before the next magic; False when the buffer holds none."""
        buffer = self._buffer
        start = buffer.find(MAGIC)
        if start < 0:
            # Keep a trailing first magic byte: the rest may be in the next read.
            start = len(buffer) - (1 if buffer[-1:] == MAGIC[:1] else 0)
        if start:
            self.errors["garbage"] += start
            del buffer[:start]
        return buffer.startswith(MAGIC)

    def _skip_magic(self, reason: str) -> None:
        self.errors[reason] += 1
        self.errors["garbage"] += len(MAGIC)
        del self._buffer[: len(MAGIC)]

    def _decode(self, version: int, kind: int, seq: int, payload: bytes) -> Frame | None:
        # The CRC held, so the frame's bounds are right: skip just this frame on any error.
        if version != VERSION:
            self.errors["bad_version"] += 1
            return None
        message_type = MESSAGE_TYPES.get(kind)
        if message_type is None:
            self.errors["unknown_type"] += 1
            return None
        try:
            message = message_type.unpack(payload)
        except (PayloadError, ValidationError):
            self.errors["bad_payload"] += 1
            return None
        self.frames += 1
        return Frame(seq, message)
