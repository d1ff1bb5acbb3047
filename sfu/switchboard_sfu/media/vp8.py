"""The VP8 payload descriptor (RFC 7741 4.2): its length, and the picture ids a forwarder
rewrites when it splices streams (simulcast layers) into one for a subscriber."""

from __future__ import annotations

_X = 0x80
_I = 0x80
_L = 0x40
_TK = 0x30
_LONG_PICTURE_ID = 0x80


def vp8_descriptor_length(payload: bytes) -> int | None:
    """Bytes of the payload descriptor at the start of `payload` (None: truncated)."""
    if not payload:
        return None
    pos = 1
    if payload[0] & _X:
        if len(payload) < 2:
            return None
        ext = payload[1]
        pos = 2
        if ext & _I:
            if len(payload) <= pos:
                return None
            pos += 2 if payload[pos] & _LONG_PICTURE_ID else 1
        if ext & _L:
            pos += 1
        if ext & _TK:
            pos += 1
    return pos if pos <= len(payload) else None


def vp8_picture_ids(payload: bytes) -> tuple[int | None, int | None]:
    """(PictureID, TL0PICIDX) of a VP8 payload, each None when absent or truncated."""
    if len(payload) < 2 or not payload[0] & _X:
        return None, None
    ext = payload[1]
    pos = 2
    picture_id = None
    if ext & _I:
        if len(payload) <= pos:
            return None, None
        if payload[pos] & _LONG_PICTURE_ID:
            if len(payload) < pos + 2:
                return None, None
            picture_id = ((payload[pos] & 0x7F) << 8) | payload[pos + 1]
            pos += 2
        else:
            picture_id = payload[pos]
            pos += 1
    tl0picidx = None
    if ext & _L and len(payload) > pos:
        tl0picidx = payload[pos]
    return picture_id, tl0picidx


def rewrite_vp8_picture_ids(payload: bytes, picture_id_delta: int, tl0picidx_delta: int) -> bytes:
    """`payload` with `picture_id_delta` added to its PictureID (modulo its 7 or 15 bits) and
    `tl0picidx_delta` to its TL0PICIDX (modulo 256); the length never changes."""
    if len(payload) < 2 or not payload[0] & _X:
        return payload
    ext = payload[1]
    out = bytearray(payload)
    pos = 2
    if ext & _I:
        if len(out) <= pos:
            return payload
        if out[pos] & _LONG_PICTURE_ID:
            if len(out) < pos + 2:
                return payload
            picture_id = ((((out[pos] & 0x7F) << 8) | out[pos + 1]) + picture_id_delta) & 0x7FFF
            out[pos] = _LONG_PICTURE_ID | (picture_id >> 8)
            out[pos + 1] = picture_id & 0xFF
            pos += 2
        else:
            out[pos] = (out[pos] + picture_id_delta) & 0x7F
            pos += 1
    if ext & _L and len(out) > pos:
        out[pos] = (out[pos] + tl0picidx_delta) & 0xFF
    return bytes(out)
