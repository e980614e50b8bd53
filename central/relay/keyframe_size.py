"""The picture size a keyframe announces in its own headers, read without decoding (pure:
no I/O), so that an oversized picture is refused before any decoder is opened.

- H.264 (Annex-B): every sequence parameter set in the access unit (ITU-T H.264 7.3.2.1.1),
  with its frame cropping applied as a decoder applies it.
- VP8: the key frame header's 14-bit width and height (RFC 6386 9.1).
"""

from __future__ import annotations

from runtime.media import ANNEXB_START

NAL_SPS = 7
VP8_START_CODE = b"\x9d\x01\x2a"
# Profiles whose SPS carries chroma format, bit depths and scaling matrices (7.3.2.1.1).
HIGH_PROFILES = frozenset({44, 83, 86, 100, 110, 118, 122, 128, 134, 135, 138, 139, 244})
MAX_POC_CYCLE = 255
MAX_GOLOMB_ZEROS = 31


class TruncatedHeader(ValueError):
    """The header ends, or breaks the syntax, before the picture size."""


class _Bits:
    """An RBSP read bit by bit, with the Exp-Golomb codes of H.264 (9.1)."""

    def __init__(self, rbsp: bytes) -> None:
        self._rbsp = rbsp
        self._at = 0

    def bit(self) -> int:
        if self._at >= 8 * len(self._rbsp):
            raise TruncatedHeader("header ends early")
        byte, shift = self._rbsp[self._at >> 3], 7 - self._at % 8
        self._at += 1
        return (byte >> shift) & 1

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = value << 1 | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.bit():
            zeros += 1
            if zeros > MAX_GOLOMB_ZEROS:
                raise TruncatedHeader("Exp-Golomb code too long")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _nal_units(annexb: bytes) -> list[bytes]:
    """The NAL units of an Annex-B access unit. Emulation prevention keeps 00 00 01 out of
    every unit, so the start codes split it exactly (the zero byte of a 4-byte start code
    is left at the end of the unit before it, where it is a trailing zero)."""
    return annexb.split(ANNEXB_START)[1:]


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = following = 8
    for _ in range(size):
        if following:
            following = (last + bits.se()) % 256
        last = following or last


def _skip_to_dimensions(bits: _Bits) -> tuple[int, bool]:
    """Reads an SPS up to pic_width_in_mbs_minus1: its chroma format and whether its colour
    planes are coded apart."""
    profile = bits.bits(8)
    bits.bits(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    chroma_format, separate_planes = 1, False
    if profile in HIGH_PROFILES:
        chroma_format = bits.ue()
        if chroma_format == 3:
            separate_planes = bool(bits.bit())
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.bit()  # qpprime_y_zero_transform_bypass_flag
        if bits.bit():  # seq_scaling_matrix_present_flag
            for index in range(12 if chroma_format == 3 else 8):
                if bits.bit():
                    _skip_scaling_list(bits, 16 if index < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        bits.bit()  # delta_pic_order_always_zero_flag
        bits.se()  # offset_for_non_ref_pic
        bits.se()  # offset_for_top_to_bottom_field
        cycle = bits.ue()
        if cycle > MAX_POC_CYCLE:
            raise TruncatedHeader("pic order count cycle too long")
        for _ in range(cycle):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.bit()  # gaps_in_frame_num_value_allowed_flag
    return chroma_format, separate_planes


def sps_size(rbsp: bytes) -> tuple[int, int]:
    """Width and height of the pictures an SPS (its RBSP, after the NAL header) describes."""
    bits = _Bits(rbsp)
    chroma_format, separate_planes = _skip_to_dimensions(bits)
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.bit()
    if not frame_mbs_only:
        bits.bit()  # mb_adaptive_frame_field_flag
    bits.bit()  # direct_8x8_inference_flag
    width, height = 16 * width_mbs, 16 * height_units * (2 - frame_mbs_only)
    if bits.bit():  # frame_cropping_flag: in chroma samples (Table 6-1, 7.4.2.1.1)
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        if chroma_format == 0 or separate_planes:
            unit_x, unit_y = 1, 2 - frame_mbs_only
        else:
            unit_x = 1 if chroma_format == 3 else 2
            unit_y = (2 if chroma_format == 1 else 1) * (2 - frame_mbs_only)
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise TruncatedHeader("cropped to nothing")
    return width, height


def _unescaped(nal_payload: bytes) -> bytes:
    """The RBSP: emulation prevention bytes (00 00 03) removed."""
    return nal_payload.replace(b"\x00\x00\x03", b"\x00\x00")


def h264_size(annexb: bytes) -> tuple[int, int] | None:
    """The widest and the tallest picture the SPSs of the access unit describe (a decoder
    uses the one its picture parameter set names); None without an SPS. TruncatedHeader
    when an SPS is cut short or malformed."""
    sizes = [
        sps_size(_unescaped(nal[1:]))
        for nal in _nal_units(annexb)
        if nal and (nal[0] & 0x1F) == NAL_SPS
    ]
    if not sizes:
        return None
    return max(width for width, _ in sizes), max(height for _, height in sizes)


def vp8_size(frame: bytes) -> tuple[int, int] | None:
    """Width and height of a VP8 key frame; None for an interframe or a broken header."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != VP8_START_CODE:
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None


def keyframe_size(codec: str, keyframe: bytes) -> tuple[int, int] | None:
    """(width, height) as the keyframe's headers announce it; None when they do not say.
    TruncatedHeader when an H.264 SPS is cut short or malformed."""
    if codec == "h264":
        return h264_size(keyframe)
    if codec == "vp8":
        return vp8_size(keyframe)
    return None
