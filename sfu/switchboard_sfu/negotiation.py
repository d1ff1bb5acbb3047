"""SDP offer/answer steps shared by WebSocket signalling, WHIP and WHEP: answering a
publisher's offer with one pinned codec per m-line, reading what an offer asks for, and
turning trickled candidates into aiortc's form.
"""

from dataclasses import dataclass

from aiortc import RTCIceCandidate, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from switchboard_sfu.media import (
    accept_simulcast,
    answer_simulcast,
    restrict_codecs,
    simulcast_offers,
)

PUBLISH_CODECS = ("video/VP8", "video/H264", "audio/opus", "audio/PCMU", "audio/PCMA")
"""Codecs accepted from publishers, most preferred first: VP8 first because every browser
decodes it, and a subscriber receives exactly the publisher's codec."""

MAX_SDP_BYTES = 64 * 1024


@dataclass(frozen=True)
class OfferSummary:
    """What an SDP offer contains, read before any state is created for it."""

    media_kinds: tuple[str, ...]
    """`audio`/`video` m-lines, in order (rejected m-lines with port 0 excluded)."""
    data: bool
    """True if it carries a data-channel (`application`) m-line."""


def summarize_offer(sdp: str) -> OfferSummary:
    kinds: list[str] = []
    data = False
    for line in sdp.splitlines():
        if not line.startswith("m="):
            continue
        fields = line[2:].split()
        if len(fields) < 2 or fields[1] == "0":
            continue
        if fields[0] in ("audio", "video"):
            kinds.append(fields[0])
        elif fields[0] == "application":
            data = True
    return OfferSummary(media_kinds=tuple(kinds), data=data)


async def answer_publisher_offer(pc: RTCPeerConnection, sdp: str) -> str:
    """Apply a publisher's offer and return the answer, pinned to one codec per m-line, with
    the simulcast layers it offers accepted (up to three per video m-line).

    The peer connection's "track" handlers run inside `setRemoteDescription`.
    Raises CodecMismatchError when an m-line offers no codec the SFU forwards.
    """
    simulcast = simulcast_offers(sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
    accepted = {}
    for transceiver in pc.getTransceivers():
        if not transceiver.stopped and transceiver.direction != "inactive":
            restrict_codecs(transceiver, PUBLISH_CODECS)
            offer = simulcast.get(transceiver.mid or "")
            if offer is not None:
                accept_simulcast(transceiver, offer)
                accepted[offer.mid] = offer
    answer = await pc.createAnswer()
    await pc.setLocalDescription(answer)
    return answer_simulcast(pc.localDescription.sdp, accepted)


def parse_candidate(
    candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
) -> RTCIceCandidate:
    """An aiortc candidate from the browser's `RTCIceCandidate` fields.

    Raises ValueError for anything that is not a candidate line.
    """
    line = candidate.strip().removeprefix("a=").removeprefix("candidate:")
    parsed = candidate_from_sdp(line)
    parsed.sdpMid = sdp_mid
    parsed.sdpMLineIndex = sdp_mline_index
    if sdp_mid is None and sdp_mline_index is None:
        parsed.sdpMLineIndex = 0  # max-bundle: every m-line shares the first one's transport
    return parsed


def trickle_candidates(sdpfrag: str) -> tuple[list[RTCIceCandidate], bool]:
    """Candidates of a WHIP/WHEP PATCH body (`application/trickle-ice-sdpfrag`, RFC 8840),
    and whether it signals end-of-candidates."""
    candidates = []
    mid: str | None = None
    complete = False
    for raw in sdpfrag.splitlines():
        line = raw.strip()
        if line.startswith("a=mid:"):
            mid = line.removeprefix("a=mid:")
        elif line.startswith("a=candidate:"):
            candidates.append(parse_candidate(line, mid, None if mid is not None else 0))
        elif line == "a=end-of-candidates":
            complete = True
    return candidates, complete
