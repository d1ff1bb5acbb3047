"""The pure pieces of simulcast: SDP, layer choice and probing, VP8 picture ids, frame sizes."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.codecs import CODECS, get_encoder
from aiortc.rtp import RtpPacket
from peer_client import SyntheticVideo

from switchboard_sfu.media.keyframes import keyframe_size
from switchboard_sfu.media.layer import BitrateMeter, PublishedLayer
from switchboard_sfu.media.layer_pausing import LayerPausing, PausingSettings
from switchboard_sfu.media.layer_selection import (
    BandwidthProbe,
    LaggingEstimate,
    LayerRequest,
    LayerState,
    ProbeSettings,
    choose_layer,
)
from switchboard_sfu.media.simulcast import (
    REPAIRED_RTP_STREAM_ID_URI,
    RTP_STREAM_ID_URI,
    answer_simulcast,
    simulcast_offers,
)
from switchboard_sfu.media.vp8 import rewrite_vp8_picture_ids, vp8_picture_ids

# What Chromium offers for sendEncodings [{rid: q, scale 4}, {rid: h, scale 2}, {rid: f}]
# (trimmed to the lines that matter here), plus an audio m-line.
CHROMIUM_OFFER = """v=0
o=- 4184334349647060202 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
m=video 9 UDP/TLS/RTP/SAVPF 96 97
c=IN IP4 0.0.0.0
a=mid:0
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id
a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id
a=sendonly
a=rtpmap:96 VP8/90000
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rid:q send
a=rid:h send
a=rid:f send
a=simulcast:send q;h;f
m=audio 9 UDP/TLS/RTP/SAVPF 111
c=IN IP4 0.0.0.0
a=mid:1
a=sendonly
a=rtpmap:111 opus/48000/2
""".replace("\n", "\r\n")


def test_a_chromium_simulcast_offer_is_read_per_m_line():
    [offer] = simulcast_offers(CHROMIUM_OFFER).values()
    assert offer.mid == "0"
    assert offer.rids == ("q", "h", "f")
    assert {(e.id, e.uri) for e in offer.extensions} == {
        (10, RTP_STREAM_ID_URI),
        (11, REPAIRED_RTP_STREAM_ID_URI),
    }


def test_the_answer_receives_the_offered_layers_on_their_m_line():
    offers = simulcast_offers(CHROMIUM_OFFER)
    answer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=recvonly\r\n"
    answer += "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=recvonly\r\n"

    answered = answer_simulcast(answer, offers)

    video, audio = answered.split("m=audio")
    assert video.endswith(
        "a=rid:q recv\r\na=rid:h recv\r\na=rid:f recv\r\na=simulcast:recv q;h;f\r\n"
    )
    assert "rid" not in audio and answered.endswith("a=recvonly\r\n")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # Without the RID header extension the layers cannot be told apart: no simulcast.
        (("a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n", ""), None),
        # A paused layer is accepted; alternatives keep their first RID.
        (("a=simulcast:send q;h;f", "a=simulcast:send ~q;h,x;f"), ("q", "h", "f")),
        # Only RIDs declared for sending, at most three.
        (("a=simulcast:send q;h;f", "a=simulcast:send q;z;h;f"), ("q", "h", "f")),
        (("a=rid:f send", "a=rid:f recv"), ("q", "h")),
        # A rejected m-line.
        (("m=video 9 ", "m=video 0 "), None),
    ],
)
def test_offers_the_sfu_cannot_receive_as_simulcast_are_answered_without(change, expected):
    offers = simulcast_offers(CHROMIUM_OFFER.replace(*change))
    assert (offers["0"].rids if offers else None) == expected


def layers(*bitrates: int | None, heights=(90, 180, 360)) -> list[LayerState]:
    return [
        LayerState(rid=rid, bitrate_bps=bitrate, height=height, available=True)
        for rid, bitrate, height in zip("qhf", bitrates, heights, strict=False)
    ]


def test_without_an_estimate_the_best_allowed_layer_is_chosen():
    assert choose_layer(layers(150_000, 400_000, 1_000_000), LayerRequest(), None, None).rid == "f"
    assert choose_layer(layers(1, 2, 3), LayerRequest(rid="h"), None, None).rid == "h"
    assert choose_layer(layers(1, 2, 3), LayerRequest(max_height=200), None, None).rid == "h"
    # A ceiling below every layer still gets the lowest.
    assert choose_layer(layers(1, 2, 3), LayerRequest(max_height=10), None, None).rid == "q"


def test_the_estimate_picks_the_best_layer_that_fits_with_headroom_to_go_up():
    states = layers(150_000, 400_000, 1_000_000)
    assert choose_layer(states, LayerRequest(), 300_000, "f").rid == "q"
    assert choose_layer(states, LayerRequest(), 50_000, "f").rid == "q"  # never nothing
    # Going up needs the bitrate within 90% of the estimate; staying needs it within 100%.
    assert choose_layer(states, LayerRequest(), 420_000, "q").rid == "q"
    assert choose_layer(states, LayerRequest(), 420_000, "h").rid == "h"
    assert choose_layer(states, LayerRequest(), 450_000, "q").rid == "h"
    # The explicit ceiling holds even with plenty of bandwidth.
    assert choose_layer(states, LayerRequest(rid="h"), 10_000_000, "q").rid == "h"


def test_a_layer_limited_only_by_bandwidth_is_worth_probing_for():
    states = layers(150_000, 400_000, 1_000_000)
    assert choose_layer(states, LayerRequest(), 300_000, "q").probe_bps == 400_000
    assert choose_layer(states, LayerRequest(rid="q"), 300_000, "q").probe_bps is None
    assert choose_layer(states, LayerRequest(), 5_000_000, "f").probe_bps is None


def test_layers_that_are_not_sent_are_not_chosen():
    states = layers(150_000, 400_000, 1_000_000)
    states[2] = LayerState(rid="f", bitrate_bps=1_000_000, height=360, available=False)
    assert choose_layer(states, LayerRequest(), None, "f").rid == "h"
    nothing = [LayerState(rid="q", bitrate_bps=None, height=None, available=False)]
    assert choose_layer(nothing, LayerRequest(), None, "q").rid == "q"


def test_a_probe_pads_to_the_next_layer_until_the_estimate_drops_then_backs_off():
    settings = ProbeSettings(first_delay_s=5, max_duration_s=20, backoff_s=10)
    probe = BandwidthProbe(settings, now=0)
    pad = {"sending_bps": 150_000, "probe_bps": 400_000}
    assert probe.padding_bps(1, estimate_bps=200_000, **pad) == 0  # too soon
    assert probe.padding_bps(5, estimate_bps=200_000, **pad) == 250_000
    assert probe.padding_bps(8, estimate_bps=300_000, **pad) == 250_000
    # The estimate fell: the padding congests the path, stop and wait.
    assert probe.padding_bps(9, estimate_bps=170_000, **pad) == 0
    assert probe.padding_bps(18, estimate_bps=200_000, **pad) == 0
    assert probe.padding_bps(19, estimate_bps=200_000, **pad) == 250_000
    # A second failure (timeout) waits twice as long.
    assert probe.padding_bps(40, estimate_bps=200_000, **pad) == 0
    assert probe.padding_bps(59, estimate_bps=200_000, **pad) == 0
    assert probe.padding_bps(60, estimate_bps=200_000, **pad) == 250_000
    # Nothing to probe for: no padding.
    assert probe.padding_bps(61, estimate_bps=200_000, sending_bps=1, probe_bps=None) == 0


def test_a_switch_ends_a_probe_and_resets_its_backoff():
    probe = BandwidthProbe(ProbeSettings(first_delay_s=5), now=0)
    pad = {"sending_bps": 150_000, "probe_bps": 400_000, "estimate_bps": 200_000}
    assert probe.padding_bps(5, **pad) > 0
    probe.layer_changed(6)
    assert not probe.probing
    assert probe.padding_bps(10, **pad) == 0
    assert probe.padding_bps(11, **pad) > 0


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # X, I with a 15-bit picture id, L: TL0PICIDX.
        (bytes([0x90, 0xC0, 0xFF, 0xFE, 0xFF, 0x00]), (0x7FFE, 0xFF)),
        # X, I with a 7-bit picture id, no TL0PICIDX.
        (bytes([0x90, 0x80, 0x7E, 0x00]), (0x7E, None)),
        (bytes([0x10, 0x00]), (None, None)),
    ],
)
def test_vp8_picture_ids_are_rewritten_in_place_modulo_their_width(payload, expected):
    assert vp8_picture_ids(payload) == expected
    rewritten = rewrite_vp8_picture_ids(payload, 3, 2)
    assert len(rewritten) == len(payload)
    picture_id, tl0picidx = vp8_picture_ids(rewritten)
    if expected[0] is not None:
        width = 0x7FFF if expected[0] > 0x7F or payload[2] & 0x80 else 0x7F
        assert picture_id == (expected[0] + 3) & width
    if expected[1] is not None:
        assert tl0picidx == (expected[1] + 2) & 0xFF
    assert rewritten[-1] == payload[-1]  # the frame data is untouched


@pytest.mark.parametrize("mime_type", ["video/VP8", "video/H264"])
@pytest.mark.parametrize("size", [(320, 180), (640, 360), (160, 96)])
def test_keyframes_tell_their_frame_size(mime_type, size):
    codec = next(c for c in CODECS["video"] if c.mimeType == mime_type)
    encoder = get_encoder(codec)
    track = SyntheticVideo(*size, 1000)

    async def encode(keyframe: bool) -> list[bytes]:
        return encoder.encode(await track.recv(), keyframe)[0]

    keyframe = asyncio.run(encode(True))
    delta = asyncio.run(encode(False))
    assert keyframe_size(mime_type, keyframe[0]) == size
    assert keyframe_size(mime_type, delta[0]) is None


def test_the_bitrate_meter_keeps_its_figure_through_a_pause():
    meter = BitrateMeter()
    for tick in range(31):
        meter.add(1250, tick / 10)  # 12.5 kB/s = 100 kbit/s
    assert meter.bps == pytest.approx(100_000, rel=0.15)
    # Paused for ten seconds, then one packet: the pause is not measured as a low rate.
    meter.add(1250, 13.0)
    assert meter.bps == pytest.approx(100_000, rel=0.15)


def test_a_layer_replays_its_history_from_a_keyframe_in_order():
    layer = PublishedLayer("h", 1, 16)
    for seq in (65530, 65531, 65533, 65534, 65535, 0, 1):  # 65532 lost, a wrap-around
        packet = RtpPacket(sequence_number=seq, timestamp=seq // 3)
        assert layer.receive(packet, now=0) is not None
    assert layer.receive(RtpPacket(sequence_number=1), now=0) is None  # a duplicate
    start = layer.history_packet(65531)[0]  # type: ignore[index]
    replay = [packet.sequence_number for _, packet in layer.history_since(start)]
    assert replay == [65531, 65533, 65534, 65535, 0, 1]


def test_unused_layers_are_paused_after_a_delay_and_resumed_when_chosen():
    pausing = LayerPausing(["q", "h", "f"], PausingSettings(pause_delay_s=3, resume_wait_s=5))
    everything = {"q", "h", "f"}
    assert pausing.update(0, used={"f"}, lowest="q", active=everything) == (("q", "h", "f"), False)
    assert pausing.update(2, used={"f"}, lowest="q", active=everything) == (None, False)
    assert pausing.update(3, used={"f"}, lowest="q", active=everything) == (("q", "f"), False)
    # A paused layer can still be chosen; choosing it resumes it...
    assert pausing.available("h", 4, active=False)
    assert pausing.update(4, used={"h"}, lowest="q", active={"q", "f"}) == (
        ("q", "h", "f"),
        True,
    )
    # ...and it stays available while the publisher restarts it.
    assert pausing.available("h", 8, active=False)
    assert pausing.update(5, used={"h"}, lowest="q", active={"q", "h", "f"}) == (None, False)


def test_a_layer_that_does_not_resume_is_given_up_for_a_while():
    settings = PausingSettings(pause_delay_s=1, resume_wait_s=5, retry_s=30)
    pausing = LayerPausing(["q", "f"], settings)
    pausing.update(0, used=set(), lowest="q", active={"q", "f"})
    pausing.update(1, used=set(), lowest="q", active={"q"})
    assert pausing.needed == ("q",)
    assert pausing.update(2, used={"f"}, lowest="q", active={"q"})[1]  # resumed
    assert pausing.available("f", 6, active=False)
    pausing.update(7, used={"f"}, lowest="q", active={"q"})  # still not sent: given up
    assert not pausing.available("f", 7, active=False)
    pausing.update(8, used=set(), lowest="q", active={"q"})
    pausing.update(9, used=set(), lowest="q", active={"q"})
    assert not pausing.available("f", 36, active=False)
    assert pausing.available("f", 37, active=False)


def test_an_estimate_lagging_behind_a_move_up_holds_nothing_back_until_it_falls():
    estimate = LaggingEstimate(grace_s=20)
    estimate.report(300_000, now=0)
    assert estimate.usable(0) == 300_000
    estimate.changed(now=1)  # moved up, or a new request
    estimate.report(320_000, now=2)  # growing: not congestion
    assert estimate.usable(2) is None
    estimate.report(290_000, now=3)  # fell: the receiver saw overuse
    assert estimate.usable(3) == 290_000
    estimate.changed(now=4)
    assert estimate.usable(23) is None
    assert estimate.usable(24) == 290_000
