"""Recognises where video frames and keyframes start in RTP payloads, without decoding them."""

from __future__ import annotations

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
    pos = 1
    if first & 0x80:  # X: extension byte follows
        if len(payload) < 2:
            return False, False
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: picture id, two bytes when its M bit is set
            if len(payload) <= pos:
                return False, False
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: TID/KEYIDX byte
            pos += 1
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
