"""The native fast path (`switchboard_sfu._fastpath`) sends exactly what the Python path sends.

The pure-Python forwarding (`RtpWriter`, `pylibsrtp.Session.protect`, `Publication`'s sequence
and keyframe logic) is the reference: for the same input, keys and rollover counter, the native
module must produce the same datagrams byte for byte.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterator

import pytest
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import RtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st
from pylibsrtp import Policy, Session

from switchboard_sfu.media import aiortc_adapter, fastpath
from switchboard_sfu.media.keyframes import is_keyframe_start
from switchboard_sfu.media.rtp_writer import (
    ABS_SEND_TIME_URI,
    AUDIO_LEVEL_URI,
    MID_URI,
    RtpWriter,
)

pytestmark = pytest.mark.skipif(
    os.environ.get("SWITCHBOARD_SFU_PYTHON_ONLY") == "1",
    reason="the native module is not built on this machine (no Rust toolchain)",
)

KEY = bytes(range(30))  # AES_CM_128_HMAC_SHA1_80 master key + salt


def test_the_native_module_is_built():
    assert fastpath.available(), (
        "switchboard_sfu._fastpath is missing: run `make bootstrap` with cargo on PATH "
        "(or set SWITCHBOARD_SFU_PYTHON_ONLY=1 on a machine without Rust)"
    )


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


@pytest.fixture
def sender() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def outbound(key: bytes = KEY) -> Session:
    return Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))


def writer_for(mid_id: int, abs_send_time_id: int, audio_level_id: int, mid: str) -> RtpWriter:
    extensions = [
        RTCRtpHeaderExtensionParameters(id=i, uri=uri)
        for i, uri in ((mid_id, MID_URI), (abs_send_time_id, ABS_SEND_TIME_URI))
        if i
    ]
    if audio_level_id:
        extensions.append(RTCRtpHeaderExtensionParameters(id=audio_level_id, uri=AUDIO_LEVEL_URI))
    return RtpWriter(extensions, mid)


def native_output(
    writer: RtpWriter,
    srtp: Session,
    sender: socket.socket,
    destination: tuple[str, int],
    *,
    ssrc: int = 0x1234ABCD,
    payload_types: list[tuple[int, int]] | None = None,
    seq_offset: int = 0,
    ts_offset: int = 0,
    start: int = 0,
) -> fastpath.Output:
    route = aiortc_adapter.DirectRoute(
        srtp=aiortc_adapter.libsrtp_session(srtp),
        socket_fd=sender.fileno(),
        host=destination[0],
        port=destination[1],
    )
    output = fastpath.new_output(
        route,
        writer,
        ssrc=ssrc,
        payload_types=payload_types or [(96, 96)],
        seq_offset=seq_offset,
        ts_offset=ts_offset,
        start=start,
        last_sequence_number=0,
    )
    assert output is not None
    return output


ids = st.integers(0, 14)


@settings(max_examples=300, deadline=None)
@given(
    case=st.fixed_dictionaries(
        {
            "payload": st.binary(min_size=0, max_size=1200),
            "payload_type": st.integers(0, 127),
            "target_type": st.integers(0, 127),
            "marker": st.integers(0, 1),
            "sequence_number": st.integers(0, 0xFFFF),
            "timestamp": st.integers(0, 0xFFFFFFFF),
            "seq_offset": st.integers(0, 0xFFFF),
            "ts_offset": st.integers(0, 0xFFFFFFFF),
            "padding_size": st.integers(0, 255),
            "abs_send_time": st.none() | st.integers(0, 0xFFFFFF),
            "audio_level": st.none() | st.tuples(st.booleans(), st.integers(0, 127)),
            "extension_ids": st.tuples(ids, ids, ids),
            "mid": st.text(alphabet="0123456789abc", min_size=0, max_size=16),
        }
    )
)
def test_rewritten_packets_are_identical(case):
    payload, payload_type, target_type = case["payload"], case["payload_type"], case["target_type"]
    marker, sequence_number, timestamp = case["marker"], case["sequence_number"], case["timestamp"]
    seq_offset, ts_offset, padding_size = (
        case["seq_offset"],
        case["ts_offset"],
        case["padding_size"],
    )
    abs_send_time, audio_level = case["abs_send_time"], case["audio_level"]
    extension_ids, mid = case["extension_ids"], case["mid"]
    mid_id, abs_send_time_id, audio_level_id = extension_ids
    if len({i for i in extension_ids if i}) < len([i for i in extension_ids if i]):
        return  # one id per extension
    writer = writer_for(mid_id, abs_send_time_id, audio_level_id, mid)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        output = native_output(
            writer,
            outbound(),
            sock,
            ("127.0.0.1", 9),
            payload_types=[(payload_type, target_type)],
            seq_offset=seq_offset,
            ts_offset=ts_offset,
        )
        native = output.write(
            payload,
            payload_type=payload_type,
            marker=bool(marker),
            sequence_number=sequence_number,
            timestamp=timestamp,
            padding_size=padding_size,
            abs_send_time=abs_send_time,
            audio_level=audio_level,
        )
    reference = writer.write(
        payload_type=target_type,
        marker=marker,
        sequence_number=(sequence_number + seq_offset) & 0xFFFF,
        timestamp=(timestamp + ts_offset) & 0xFFFFFFFF,
        ssrc=0x1234ABCD,
        payload=payload,
        padding_size=padding_size,
        abs_send_time=abs_send_time,
        audio_level=audio_level,
    )
    assert native == reference


def test_sent_datagrams_match_the_python_path_across_a_rollover(receiver, sender):
    """Same keys, same packets: the SRTP output is identical, also after the sequence number
    wraps (rollover counter 0 → 1)."""
    writer = writer_for(1, 2, 0, "0")
    reference_srtp = outbound()
    output = native_output(
        writer, outbound(), sender, receiver.getsockname(), seq_offset=1000, ts_offset=77
    )
    payload = os.urandom(1000)
    for n in range(64):
        seq = (0xFFFF - 1000 - 20 + n) & 0xFFFF  # out: 65515 … 65535, 0 … 42
        fields = {"marker": n % 7 == 0, "sequence_number": seq, "timestamp": 3000 * n}
        assert output.send(
            payload, payload_type=96, extended_seq=seq, abs_send_time=n * 1000, **fields
        )
        expected = reference_srtp.protect(
            writer.write(
                payload_type=96,
                marker=int(fields["marker"]),
                sequence_number=(seq + 1000) & 0xFFFF,
                timestamp=3000 * n + 77,
                ssrc=0x1234ABCD,
                payload=payload,
                abs_send_time=n * 1000,
            )
        )
        assert receiver.recv(2048) == expected, f"packet {n}"
    assert output.packets_sent == 64
    assert output.last_sequence_number == (65515 + 63) & 0xFFFF


def vp8_payload(keyframe: bool, size: int = 900) -> bytes:
    # Descriptor with X/I (15-bit picture id) and the start bit, then the VP8 header byte.
    return bytes([0x90, 0x80, 0x81, 0x23, 0x00 if keyframe else 0x01]) + os.urandom(size)


def test_native_receive_tracks_and_forwards_like_the_python_path(receiver, sender):
    """Publisher SRTP in, subscriber SRTP out: sequence extension, duplicates, frame and
    keyframe starts, the retransmission history and the forwarded bytes all match."""
    publisher_key, subscriber_key = os.urandom(30), os.urandom(30)
    publisher = Session(Policy(key=publisher_key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    sfu_inbound = Session(Policy(key=publisher_key, ssrc_type=Policy.SSRC_ANY_INBOUND))
    reference_srtp = outbound(subscriber_key)
    writer = writer_for(1, 0, 0, "v")  # no abs-send-time: that one carries the SFU's clock
    route = aiortc_adapter.ReceiveRoute(
        srtp=aiortc_adapter.libsrtp_session(sfu_inbound), abs_send_time_id=0, audio_level_id=0
    )
    ingress = fastpath.new_ingress(route)
    track = fastpath.new_track(
        owner="owner",
        media_ssrc=42,
        media_payload_types=[96],
        codec="video/VP8",
        history_size=64,
        estimate_bitrate=True,
    )
    ingress.add_track(track)
    output = native_output(
        writer,
        outbound(subscriber_key),
        sender,
        receiver.getsockname(),
        payload_types=[(96, 100)],
        seq_offset=5,
        ts_offset=9,
        start=65530,
    )
    track.add_output(output)

    # Two frames across the wrap, one duplicate, one reordered packet, one unknown SSRC.
    frames = [(65530, 0, True, 3), (65533, 3000, False, 4)]
    sent: list[RtpPacket] = []
    for first, ts, key, count in frames:
        for i in range(count):
            payload = vp8_payload(key and i == 0) if i == 0 else os.urandom(700)
            sent.append(
                RtpPacket(
                    payload_type=96,
                    marker=int(i == count - 1),
                    sequence_number=(first + i) & 0xFFFF,
                    timestamp=ts,
                    ssrc=42,
                    payload=payload,
                )
            )
    order = [0, 1, 2, 3, 5, 4, 6, 6]  # 5 before 4 (reordered), 6 twice (duplicate)
    expected_extended = [65530, 65531, 65532, 65533, 65535, 65534, 65536, 65536]
    records = []
    summaries = []
    for index in order[:-1]:
        result = ingress.receive(publisher.protect(sent[index].serialize()), None)
        assert result is not None
        summaries += result[0]
        records += result[1]
    # One summary per burst: every packet counted once, each sent to the one output.
    assert [summary[:5] for summary in summaries] == [
        ("owner", 1, len(sent[index].payload), 1, len(sent[index].payload)) for index in order[:-1]
    ]
    # SRTP replay protection drops a re-sent datagram; a repeated packet arrives as an RTX
    # repair, unwrapped in Python and handed over as plain RTP.
    records.append(track.ingest(sent[6].serialize()))
    stranger = RtpPacket(payload_type=96, sequence_number=1, timestamp=1, ssrc=7, payload=b"x")
    assert ingress.receive(publisher.protect(stranger.serialize()), None) is None

    assert [r[0] for r in records] == ["owner"] * len(order)
    assert [r[6] for r in records] == expected_extended
    assert [r[9] for r in records] == [False] * 7 + [True]  # duplicate flag
    frame_starts = [r[7] for r in records]
    assert frame_starts == [True, False, False, True, False, False, False, False]
    keyframes = [r[8] for r in records]
    assert keyframes == [
        start and is_keyframe_start("video/VP8", sent[i].payload)
        for start, i in zip(frame_starts, order, strict=True)
    ]
    assert keyframes[0] and not keyframes[3]

    for index in order[:-1]:  # every packet once, in arrival order
        packet = sent[index]
        expected = reference_srtp.protect(
            writer.write(
                payload_type=100,
                marker=packet.marker,
                sequence_number=(packet.sequence_number + 5) & 0xFFFF,
                timestamp=(packet.timestamp + 9) & 0xFFFFFFFF,
                ssrc=0x1234ABCD,
                payload=packet.payload,
            )
        )
        assert receiver.recv(2048) == expected
    extended, kept = track.history_packet(sent[4].sequence_number)
    assert (extended, kept) == (65534, sent[4].serialize())


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    bitrate_kbps=st.integers(100, 6000),
    congestion_ms=st.integers(0, 40),
)
def test_the_uplink_estimate_matches_aiortcs(seed, bitrate_kbps, congestion_ms):
    """The native port of aiortc's RemoteBitrateEstimator gives the same estimates, packet
    for packet, for a publisher whose arrivals drift late (congestion) or stay steady."""
    rng = random.Random(seed)
    reference = RemoteBitrateEstimator()
    native = fastpath.new_bitrate_estimator()
    now_ms = 1_000_000
    send_time = rng.randrange(1 << 24)
    estimates = 0
    for frame in range(300):
        packets = rng.randint(1, 8)
        drift = congestion_ms * frame // 100 if frame > 100 else 0
        for _ in range(packets):
            size = rng.randint(200, 1200)
            send_time = (send_time + rng.randint(1, 200)) & 0xFFFFFF
            arrival = now_ms + drift + rng.randint(0, 3)
            expected = reference.add(
                arrival_time_ms=arrival, abs_send_time=send_time, payload_size=size, ssrc=1
            )
            assert native.add(arrival, send_time, size) == (
                None if expected is None else expected[0]
            ), f"frame {frame}"
            estimates += expected is not None
        now_ms += 33
        send_time = (send_time + (33 << 18) // 1000) & 0xFFFFFF
    assert estimates > 0


@settings(max_examples=80, deadline=None)
@given(
    start=st.integers(0, 0xFFFF),
    steps=st.lists(st.integers(-40, 300), min_size=1, max_size=200),
)
def test_receive_statistics_and_nacks_match_aiortcs(start, steps):
    """The native track's ports of aiortc's receive statistics and NACK generator (what its
    receiver reports and NACKs while the track receives) follow aiortc's own, packet for
    packet: gaps, late packets and sequence wraps included."""
    track = fastpath.new_track(
        owner=None,
        media_ssrc=1,
        media_payload_types=[96],
        codec="",
        history_size=64,
        estimate_bitrate=False,
    )
    track.adopt_receive_state(clock_rate=90000, statistics=None, nack=(None, []))
    statistics, nacks = StreamStatistics(90000), NackGenerator()
    sequence_number = start
    for step in steps:
        sequence_number = (sequence_number + step) & 0xFFFF
        packet = RtpPacket(sequence_number=sequence_number, timestamp=3000 * (step % 7))
        statistics.add(packet)
        assert track.nack_add(sequence_number) == nacks.add(packet)
        track.count_received(packet.sequence_number, packet.timestamp)
        assert track.nack_state == (nacks.max_seq, sorted(nacks.missing))
        assert track.receive_statistics[:4] == (
            statistics.base_seq,
            statistics.max_seq,
            statistics.cycles,
            statistics.packets_received,
        )
        assert track.receive_statistics[6] == statistics._last_timestamp
