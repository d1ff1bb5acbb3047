"""Simulcast negotiation (RFC 8853 with RTP stream ids, RFC 8851): reading which layers a
publisher offers on an m-line, accepting them, and answering with `recv`.

aiortc parses neither `a=rid` nor `a=simulcast`: the offer is read here, the answer's text is
completed here, and the transceivers whose layers were accepted are remembered so their
publications know the layer names before any packet arrives.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass

from aiortc import RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters

from . import aiortc_adapter

RTP_STREAM_ID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RTP_STREAM_ID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
MAX_LAYERS = 3
"""Layers accepted per m-line: more are left out of the answer (the publisher stops them)."""

# RFC 8851 rid-syntax; the header extension carries at most 16 bytes (one-byte form).
_RID = re.compile(r"[A-Za-z0-9_-]{1,16}")


@dataclass(frozen=True)
class SimulcastOffer:
    """The layers a publisher offers to send on one m-line, and how it names them in RTP."""

    mid: str
    rids: tuple[str, ...]
    """Accepted layer names, in the offer's `a=simulcast` order (at most MAX_LAYERS)."""
    extensions: tuple[RTCRtpHeaderExtensionParameters, ...]
    """The offer's rtp-stream-id (and repaired-rtp-stream-id) extensions, with its ids."""


def simulcast_offers(sdp: str) -> dict[str, SimulcastOffer]:
    """The m-lines of an offer that send simulcast we can receive, by MID.

    An m-line counts when it sends `a=simulcast:send` with RIDs declared `a=rid:<id> send`
    and offers the rtp-stream-id header extension (without it, layers cannot be told apart).
    Alternatives (`a,b`) keep their first RID; a paused RID (`~a`) is accepted unpaused.
    """
    offers = {}
    for section in _media_sections(sdp):
        offer = _simulcast_of(section)
        if offer is not None:
            offers[offer.mid] = offer
    return offers


def answer_simulcast(answer_sdp: str, offers: Mapping[str, SimulcastOffer]) -> str:
    """`answer_sdp` with `a=rid:<id> recv` and `a=simulcast:recv` added to each m-line that
    accepted a simulcast offer (aiortc writes neither)."""
    if not offers:
        return answer_sdp
    newline = "\r\n" if "\r\n" in answer_sdp else "\n"
    lines = answer_sdp.split(newline)
    out: list[str] = []
    pending: SimulcastOffer | None = None

    def close_section() -> None:
        nonlocal pending
        if pending is not None:
            # Keep the final empty string (trailing newline) after the added lines.
            at = len(out) if out[-1:] != [""] else len(out) - 1
            added = [f"a=rid:{rid} recv" for rid in pending.rids]
            added.append("a=simulcast:recv " + ";".join(pending.rids))
            out[at:at] = added
            pending = None

    for line in lines:
        if line.startswith("m="):
            close_section()
        elif line.startswith("a=mid:"):
            offer = offers.get(line.removeprefix("a=mid:").strip())
            pending = offer if offer is not None and not _rejected(out) else None
        out.append(line)
    close_section()
    return newline.join(out)


# --- what was accepted, per transceiver ----------------------------------------------------

_accepted: weakref.WeakKeyDictionary[RTCRtpTransceiver, tuple[str, ...]] = (
    weakref.WeakKeyDictionary()
)


def accept_simulcast(transceiver: RTCRtpTransceiver, offer: SimulcastOffer) -> None:
    """Receive `offer`'s layers on `transceiver`: negotiate the RID header extensions (call
    after each `setRemoteDescription`, before `createAnswer`) and remember the layer names."""
    aiortc_adapter.add_header_extensions(transceiver, offer.extensions)
    _accepted[transceiver] = offer.rids


def accepted_rids(transceiver: RTCRtpTransceiver) -> tuple[str, ...]:
    """The layer names accepted on `transceiver`; empty when it receives one stream."""
    return _accepted.get(transceiver, ())


# --- parsing -------------------------------------------------------------------------------


def _media_sections(sdp: str) -> list[list[str]]:
    sections: list[list[str]] = []
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
    return sections


def _simulcast_of(section: list[str]) -> SimulcastOffer | None:
    fields = section[0][2:].split()
    if len(fields) < 2 or fields[0] != "video" or fields[1] == "0":
        return None
    mid = None
    sending_rids: set[str] = set()
    streams: list[str] = []
    extensions: dict[str, RTCRtpHeaderExtensionParameters] = {}
    for line in section[1:]:
        if line.startswith("a=mid:"):
            mid = line.removeprefix("a=mid:").strip()
        elif line.startswith("a=rid:"):
            parts = line.removeprefix("a=rid:").split()
            if len(parts) >= 2 and parts[1] == "send" and _RID.fullmatch(parts[0]):
                sending_rids.add(parts[0])
        elif line.startswith("a=simulcast:"):
            streams = _send_streams(line.removeprefix("a=simulcast:"))
        elif line.startswith("a=extmap:"):
            extension = _extension(line.removeprefix("a=extmap:"))
            if extension is not None and extension.uri in (
                RTP_STREAM_ID_URI,
                REPAIRED_RTP_STREAM_ID_URI,
            ):
                extensions[extension.uri] = extension
    rids = tuple(dict.fromkeys(r for r in streams if r in sending_rids))[:MAX_LAYERS]
    if mid is None or len(rids) < 2 or RTP_STREAM_ID_URI not in extensions:
        return None
    return SimulcastOffer(mid=mid, rids=rids, extensions=tuple(extensions.values()))


def _send_streams(value: str) -> list[str]:
    """RIDs of the `send` part of an `a=simulcast` value, first alternative of each stream."""
    tokens = value.split()
    for direction, streams in zip(tokens[::2], tokens[1::2], strict=False):
        if direction == "send":
            return [s.split(",")[0].removeprefix("~") for s in streams.split(";") if s]
    return []


def _extension(value: str) -> RTCRtpHeaderExtensionParameters | None:
    parts = value.split()
    if len(parts) < 2:
        return None
    try:
        extension_id = int(parts[0].split("/")[0])
    except ValueError:
        return None
    if not 1 <= extension_id <= 255:
        return None
    return RTCRtpHeaderExtensionParameters(id=extension_id, uri=parts[1])


def _rejected(section_so_far: list[str]) -> bool:
    """True when the m-line being written (the last `m=` so far) has port 0."""
    m_line = next((line for line in reversed(section_so_far) if line.startswith("m=")), "")
    fields = m_line[2:].split()
    return len(fields) >= 2 and fields[1] == "0"
