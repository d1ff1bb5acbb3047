"""Recognises where video frames and keyframes start in RTP payloads, without decoding them."""

from __future__ import annotations

from .vp8 import vp8_descriptor_length

_H264_IDR = 5
_H264_SPS = 7
_H264_STAP_A = 24
_H264_FU_A = 28


def vp8_partition_start(payload: bytes) -> tuple[bool, bool]:
    """(first packet of a frame, that frame is a keyframe) from a VP8 payload (RFC 7741)."""
    if not payload:
        return False, False
    first = payload[0]
    if not (first & 0x10) or (first & 0x07):  # S bit clear or not partition 0
        return False, False
    pos = vp8_descriptor_length(payload)
    if pos is None:
        return False, False
    if len(payload) <= pos:
        return True, False
    # VP8 payload header: P bit (inverse key frame flag) is the lowest bit.
    return True, not (payload[pos] & 0x01)


def h264_has_keyframe(payload: bytes) -> bool:
    """True when an H.264 payload (RFC 6184) starts an IDR picture or carries an SPS."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in (_H264_IDR, _H264_SPS):
        return True
    if nal_type == _H264_STAP_A:
        pos = 1
        while pos + 2 < len(payload):
            size = (payload[pos] << 8) | payload[pos + 1]
            if payload[pos + 2] & 0x1F in (_H264_IDR, _H264_SPS):
                return True
            pos += 2 + size
        return False
    if nal_type == _H264_FU_A and len(payload) > 1:
        return bool(payload[1] & 0x80) and (payload[1] & 0x1F) in (_H264_IDR, _H264_SPS)
    return False


def is_keyframe_start(mime_type: str, payload: bytes) -> bool:
    """True when this packet's payload begins a keyframe (packets of new frames only)."""
    name = mime_type.lower()
    if name == "video/vp8":
        start, key = vp8_partition_start(payload)
        return start and key
    if name == "video/h264":
        return h264_has_keyframe(payload)
    return False


def keyframe_size(mime_type: str, payload: bytes) -> tuple[int, int] | None:
    """(width, height) coded in the first packet of a keyframe, when it carries them (VP8's
    keyframe header, an H.264 SPS); None otherwise."""
    name = mime_type.lower()
    try:
        if name == "video/vp8":
            return _vp8_keyframe_size(payload)
        if name == "video/h264":
            sps = _h264_sps(payload)
            return _h264_sps_size(_unescape(sps)) if sps is not None else None
    except (IndexError, ValueError):
        return None
    return None


def _vp8_keyframe_size(payload: bytes) -> tuple[int, int] | None:
    pos = vp8_descriptor_length(payload)
    if pos is None or len(payload) < pos + 10 or payload[pos] & 0x01:
        return None
    # RFC 6386 9.1: 3-byte frame tag, start code 9d 01 2a, 14-bit width and height.
    if payload[pos + 3 : pos + 6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(payload[pos + 6 : pos + 8], "little") & 0x3FFF
    height = int.from_bytes(payload[pos + 8 : pos + 10], "little") & 0x3FFF
    return width, height


def _h264_sps(payload: bytes) -> bytes | None:
    """The SPS NAL unit of a single-NAL or STAP-A payload (without its 1-byte header)."""
    if not payload:
        return None
    nal_type = payload[0] & 0x1F
    if nal_type == _H264_SPS:
        return payload[1:]
    if nal_type == _H264_STAP_A:
        pos = 1
        while pos + 2 < len(payload):
            size = (payload[pos] << 8) | payload[pos + 1]
            if payload[pos + 2] & 0x1F == _H264_SPS:
                return payload[pos + 3 : pos + 2 + size]
            pos += 2 + size
    return None


def _unescape(nal: bytes) -> bytes:
    """RBSP of a NAL unit: emulation prevention bytes (00 00 03) removed."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


class _Bits:
    """Reads an H.264 RBSP: fixed-width fields and Exp-Golomb codes."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            byte = self._data[self._pos >> 3]  # IndexError past the end
            value = (value << 1) | ((byte >> (7 - (self._pos & 7))) & 1)
            self._pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bits(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def _h264_sps_size(rbsp: bytes) -> tuple[int, int]:
    """Frame size from an SPS (ITU-T H.264 7.3.2.1.1 and the cropping rules of 7.4.2.1.1)."""
    bits = _Bits(rbsp)
    profile_idc = bits.bits(8)
    bits.bits(16)  # constraint flags, level_idc
    bits.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = bits.ue()
        if chroma_format_idc == 3:
            bits.bits(1)  # separate_colour_plane_flag
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.bits(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.bits(1):  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format_idc != 3 else 12):
                if bits.bits(1):
                    _skip_scaling_list(bits, 16 if index < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    pic_order_cnt_type = bits.ue()
    if pic_order_cnt_type == 0:
        bits.ue()
    elif pic_order_cnt_type == 1:
        bits.bits(1)
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.bits(1)  # gaps_in_frame_num_value_allowed_flag
    width_in_mbs = bits.ue() + 1
    height_in_map_units = bits.ue() + 1
    frame_mbs_only = bits.bits(1)
    if not frame_mbs_only:
        bits.bits(1)  # mb_adaptive_frame_field_flag
    bits.bits(1)  # direct_8x8_inference_flag
    crop = (0, 0, 0, 0)
    if bits.bits(1):
        crop = (bits.ue(), bits.ue(), bits.ue(), bits.ue())
    if chroma_format_idc == 0:
        crop_x, crop_y = 1, 2 - frame_mbs_only
    else:
        crop_x = 1 if chroma_format_idc == 3 else 2
        crop_y = (2 if chroma_format_idc == 1 else 1) * (2 - frame_mbs_only)
    width = width_in_mbs * 16 - (crop[0] + crop[1]) * crop_x
    height = (2 - frame_mbs_only) * height_in_map_units * 16 - (crop[2] + crop[3]) * crop_y
    return width, height


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last, following = 8, 8
    for _ in range(size):
        if following:
            following = (last + bits.se() + 256) % 256
        last = following or last
