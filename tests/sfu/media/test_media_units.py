"""Byte-level pieces of the forwarding core, checked against aiortc's own implementations."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.codecs import CODECS, get_encoder
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from peer_client import SyntheticVideo

from switchboard_sfu.media.keyframes import is_keyframe_start, vp8_partition_start
from switchboard_sfu.media.rtp_writer import ABS_SEND_TIME_URI, AUDIO_LEVEL_URI, MID_URI, RtpWriter
from switchboard_sfu.media.sequence import SequenceExtender

EXTENSIONS = [
    RTCRtpHeaderExtensionParameters(id=1, uri=MID_URI),
    RTCRtpHeaderExtensionParameters(id=3, uri=ABS_SEND_TIME_URI),
    RTCRtpHeaderExtensionParameters(id=5, uri=AUDIO_LEVEL_URI),
]


@pytest.mark.parametrize("padding", [0, 7])
@pytest.mark.parametrize("audio_level", [None, (True, 42)])
def test_written_packets_match_aiortc_serialisation(padding, audio_level):
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(RTCRtpParameters(headerExtensions=EXTENSIONS))
    packet = RtpPacket(payload_type=96, marker=1, sequence_number=65535, timestamp=2**32 - 1)
    packet.ssrc = 0x12345678
    packet.payload = bytes(range(200))
    packet.padding_size = padding
    packet.extensions.mid = "7"
    packet.extensions.abs_send_time = 0xABCDEF
    packet.extensions.audio_level = audio_level

    written = RtpWriter(EXTENSIONS, mid="7").write(
        payload_type=96,
        marker=1,
        sequence_number=65535,
        timestamp=2**32 - 1,
        ssrc=0x12345678,
        payload=packet.payload,
        padding_size=padding,
        abs_send_time=0xABCDEF,
        audio_level=audio_level,
    )
    expected = packet.serialize(extensions_map)
    # Padding filler is arbitrary (aiortc's is random); its length byte is not.
    filler = slice(len(expected) - padding, len(expected) - 1)
    assert len(written) == len(expected)
    assert written[: filler.start] + written[-1:] == expected[: filler.start] + expected[-1:]


def test_written_packets_omit_extensions_the_subscriber_did_not_negotiate():
    written = RtpWriter([], mid="0").write(
        payload_type=111, marker=0, sequence_number=1, timestamp=2, ssrc=3, payload=b"opus"
    )
    assert written == bytes([0x80, 111, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]) + b"opus"


def _encoded(mime_type: str, keyframes: list[bool]) -> list[list[bytes]]:
    codec = next(c for c in CODECS["video"] if c.mimeType == mime_type)
    encoder = get_encoder(codec)
    track = SyntheticVideo(320, 240, 1000)

    async def encode() -> list[list[bytes]]:
        return [encoder.encode(await track.recv(), force)[0] for force in keyframes]

    return asyncio.run(encode())


@pytest.mark.parametrize("mime_type", ["video/VP8", "video/H264"])
def test_keyframes_are_recognised_at_their_first_packet_only(mime_type):
    frames = _encoded(mime_type, [False, False, True, False])
    # The first frame of a stream and the forced one are keyframes; the others are not.
    assert [is_keyframe_start(mime_type, f[0]) for f in frames] == [True, False, True, False]
    # VP8 continuation packets never look like a frame start. Every H.264 packet of a
    # keyframe carries IDR data: the forwarder only asks at frame boundaries.
    if mime_type == "video/VP8":
        for frame in frames:
            assert not any(is_keyframe_start(mime_type, p) for p in frame[1:])


def test_vp8_partition_start_needs_the_s_bit_and_partition_zero():
    assert vp8_partition_start(bytes([0x10, 0x00])) == (True, True)
    assert vp8_partition_start(bytes([0x10, 0x01])) == (True, False)
    assert vp8_partition_start(bytes([0x00, 0x00])) == (False, False)
    assert vp8_partition_start(bytes([0x11, 0x00])) == (False, False)
    # X, I (15-bit picture id), L, T present before the payload header.
    assert vp8_partition_start(bytes([0x90, 0xE0, 0x80, 0x01, 0x00, 0x00, 0x00])) == (True, True)


def test_sequence_numbers_stay_ordered_across_wraparounds():
    extender = SequenceExtender()
    start = 65000
    extended = [extender.extend((start + n) & 0xFFFF)[0] for n in range(200_000)]
    # A long stream keeps counting up through three wrap-arounds...
    assert extended == list(range(start, start + 200_000))
    # ...a late packet sorts before the newest, and a gap is counted as skipped packets.
    assert extender.extend((start + 199_990) & 0xFFFF) == (start + 199_990, 0)
    assert extender.extend((start + 200_005) & 0xFFFF) == (start + 200_005, 5)


def test_a_restarted_sender_is_not_counted_as_loss():
    extender = SequenceExtender()
    extender.extend(100)
    assert extender.extend(100 + 0x3000)[1] == 0
