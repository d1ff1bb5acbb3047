"""Serialises forwarded RTP packets for one subscriber: its SSRC, payload type, header
extension ids and MID, around the publisher's untouched payload."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

_HEADER = struct.Struct("!BBHLL")
_ONE_BYTE_PROFILE = 0xBEDE


class RtpWriter:
    """Builds packets with RFC 8285 one-byte header extensions negotiated with a subscriber.

    Written for the fan-out hot path: the fixed parts (MID element) are encoded once.
    """

    def __init__(
        self, extensions: Sequence[RTCRtpHeaderExtensionParameters], mid: str | None
    ) -> None:
        ids = {ext.uri: ext.id for ext in extensions}
        mid_id = ids.get(MID_URI)
        self._static = b""
        if mid_id is not None and mid:
            encoded = mid.encode("utf8")
            self._static = bytes([(mid_id << 4) | (len(encoded) - 1)]) + encoded
        self._abs_send_time_id = ids.get(ABS_SEND_TIME_URI)
        self._audio_level_id = ids.get(AUDIO_LEVEL_URI)
        # What a native writer needs to produce the same bytes (0: not negotiated).
        self.mid = mid or ""
        self.mid_id = mid_id or 0
        self.abs_send_time_id = self._abs_send_time_id or 0
        self.audio_level_id = self._audio_level_id or 0

    def write(
        self,
        *,
        payload_type: int,
        marker: int,
        sequence_number: int,
        timestamp: int,
        ssrc: int,
        payload: bytes,
        padding_size: int = 0,
        abs_send_time: int | None = None,
        audio_level: tuple[bool, int] | None = None,
    ) -> bytes:
        elements = self._static
        if abs_send_time is not None and self._abs_send_time_id is not None:
            elements += bytes([(self._abs_send_time_id << 4) | 2]) + (
                abs_send_time & 0xFFFFFF
            ).to_bytes(3, "big")
        if audio_level is not None and self._audio_level_id is not None:
            voice, level = audio_level
            elements += bytes([self._audio_level_id << 4, (0x80 if voice else 0) | level & 0x7F])
        first = 0x80
        if padding_size:
            first |= 0x20
        parts = []
        if elements:
            first |= 0x10
            words = (len(elements) + 3) // 4
            extension = (
                struct.pack("!HH", _ONE_BYTE_PROFILE, words)
                + elements
                + bytes(words * 4 - len(elements))
            )
            parts.append(extension)
        header = _HEADER.pack(
            first,
            (marker << 7) | payload_type,
            sequence_number,
            timestamp,
            ssrc,
        )
        if padding_size:
            return b"".join(
                (header, *parts, payload, bytes(padding_size - 1), bytes([padding_size]))
            )
        return b"".join((header, *parts, payload))
