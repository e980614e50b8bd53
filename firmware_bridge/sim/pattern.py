"""The simulator's test pattern (pure: no clock, no codec).

Colour bars, a moving block (so encoders see motion), the frame number and wall-clock time
in digits for people, and the same two numbers as a machine-readable stripe for measuring
glass-to-glass latency: two rows of 48 black/white blocks across the top of the picture,
carrying frame number (32 bits), wall-clock milliseconds (48 bits) and a 16-bit check.
The stripe survives lossy coding at ordinary bitrates because each block is large and
either full black or full white.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

BLOCKS_PER_ROW = 48
STRIPE_ROWS = 2
BLOCK_HEIGHT = 16
STRIPE_HEIGHT = BLOCK_HEIGHT * STRIPE_ROWS
BLACK, WHITE = 16, 235
MIN_WIDTH, MIN_HEIGHT = 192, 96

# Y, U, V of the classic 75 % bars: white, yellow, cyan, green, magenta, red, blue, black.
BARS = [
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
    (16, 128, 128),
]

_GLYPHS = {
    "0": "01110100011001110101110011000101110",
    "1": "00100011000010000100001000010001110",
    "2": "01110100010000100010001000100011111",
    "3": "11111000100010000010000011000101110",
    "4": "00010001100101010010111110001000010",
    "5": "11111100001111000001000011000101110",
    "6": "00110010001000011110100011000101110",
    "7": "11111000010001000100010000100001000",
    "8": "01110100011000101110100011000101110",
    "9": "01110100011000101111000010001001100",
    ":": "00000011000110000000011000110000000",
    ".": "00000000000000000000000000110001100",
    " ": "0" * 35,
}


@dataclass(frozen=True, slots=True)
class Stamp:
    frame_no: int
    wall_ms: int


class PatternRenderer:
    """Renders yuv420p planes for a given frame number and wall-clock time."""

    def __init__(self, width: int, height: int) -> None:
        if width < MIN_WIDTH or height < MIN_HEIGHT or width % 2 or height % 2:
            raise ValueError(f"pattern needs an even size of at least {MIN_WIDTH}x{MIN_HEIGHT}")
        self.width, self.height = width, height
        self._y = bytearray(width * height)
        self._u = bytearray((width // 2) * (height // 2))
        self._v = bytearray((width // 2) * (height // 2))
        self._bars()

    def _bars(self) -> None:
        w, h, cw = self.width, self.height, self.width // 2
        y_row = bytearray(BARS[min(7, x * 8 // w)][0] for x in range(w))
        u_row = bytearray(BARS[min(7, x * 16 // w)][1] for x in range(cw))
        v_row = bytearray(BARS[min(7, x * 16 // w)][2] for x in range(cw))
        self._y[:] = y_row * h
        self._u[:] = u_row * (h // 2)
        self._v[:] = v_row * (h // 2)
        # A grey band behind the stripe and the digits, so they read as black and white.
        band = min(h, STRIPE_HEIGHT + 16 + 7 * self._scale()) // 2 * cw
        self._u[:band] = bytes([128]) * band
        self._v[:band] = bytes([128]) * band
        self._y[STRIPE_HEIGHT * w : 2 * band * w // cw] = bytes([BLACK]) * (
            2 * band * w // cw - STRIPE_HEIGHT * w
        )

    def render(self, frame_no: int, wall_ms: int) -> tuple[bytes, bytes, bytes]:
        y = bytearray(self._y)
        self._stripe(y, Stamp(frame_no, wall_ms))
        self._moving_block(y, frame_no)
        secs, ms = divmod(wall_ms, 1000)
        text = (
            f"{frame_no:08d} {secs % 86400 // 3600:02d}:{secs % 3600 // 60:02d}:"
            f"{secs % 60:02d}.{ms:03d}"
        )
        self._text(y, text, x0=8, y0=STRIPE_HEIGHT + 8)
        return bytes(y), bytes(self._u), bytes(self._v)

    def _stripe(self, y: bytearray, stamp: Stamp) -> None:
        bits = encode_stamp(stamp)
        block_w = self.width // BLOCKS_PER_ROW
        for index, bit in enumerate(bits):
            row, col = divmod(index, BLOCKS_PER_ROW)
            value = WHITE if bit else BLACK
            run = bytes([value]) * block_w
            for line in range(row * BLOCK_HEIGHT, (row + 1) * BLOCK_HEIGHT):
                start = line * self.width + col * block_w
                y[start : start + block_w] = run

    def _moving_block(self, y: bytearray, frame_no: int) -> None:
        size = max(16, self.height // 8)
        span = self.width - size
        x0 = (frame_no * 4) % (2 * span)
        x0 = x0 if x0 < span else 2 * span - x0
        y0 = self.height - size - 8
        run = bytes([WHITE]) * size
        for line in range(y0, y0 + size):
            y[line * self.width + x0 : line * self.width + x0 + size] = run

    def _scale(self) -> int:
        return max(2, self.height // 160)

    def _text(self, y: bytearray, text: str, x0: int, y0: int) -> None:
        scale = self._scale()
        for n, char in enumerate(text):
            glyph = _GLYPHS.get(char, _GLYPHS[" "])
            for gy in range(7):
                for gx in range(5):
                    value = WHITE if glyph[gy * 5 + gx] == "1" else BLACK
                    px = x0 + (n * 6 + gx) * scale
                    if px + scale > self.width:
                        continue
                    for sy in range(scale):
                        line = y0 + gy * scale + sy
                        if line < self.height:
                            y[line * self.width + px : line * self.width + px + scale] = (
                                bytes([value]) * scale
                            )


def encode_stamp(stamp: Stamp) -> list[int]:
    value = ((stamp.frame_no & 0xFFFFFFFF) << 48) | (stamp.wall_ms & 0xFFFFFFFFFFFF)
    check = zlib.crc32(value.to_bytes(10, "big")) & 0xFFFF
    word = (value << 16) | check
    return [(word >> (95 - i)) & 1 for i in range(96)]


def read_stamp(y_plane: bytes, width: int, height: int) -> Stamp | None:
    """Read the stripe back from a decoded luma plane; None if it is not there or damaged."""
    if width < MIN_WIDTH or height < STRIPE_HEIGHT or len(y_plane) < width * STRIPE_HEIGHT:
        return None
    block_w = width // BLOCKS_PER_ROW
    word = 0
    for index in range(96):
        row, col = divmod(index, BLOCKS_PER_ROW)
        line = row * BLOCK_HEIGHT + BLOCK_HEIGHT // 2
        sample = y_plane[line * width + col * block_w + block_w // 2]
        word = (word << 1) | (sample > (BLACK + WHITE) // 2)
    value, check = word >> 16, word & 0xFFFF
    if zlib.crc32(value.to_bytes(10, "big")) & 0xFFFF != check:
        return None
    return Stamp(frame_no=value >> 48, wall_ms=value & 0xFFFFFFFFFFFF)
