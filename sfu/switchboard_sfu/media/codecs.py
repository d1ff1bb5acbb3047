"""Codec negotiation: pins every m-line to one codec so a subscriber receives exactly what its
publisher sends (forwarded packets are never transcoded, so both sides must agree)."""

from __future__ import annotations

from collections.abc import Sequence

from aiortc import RTCRtpReceiver, RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.sdp import parse_h264_profile_level_id

from . import aiortc_adapter

Codec = RTCRtpCodecParameters | RTCRtpCodecCapability


class CodecMismatchError(Exception):
    """The remote peer offered no codec the publication can be forwarded with."""


def is_rtx(codec: Codec) -> bool:
    return codec.mimeType.lower().endswith("/rtx")


def _h264_key(codec: Codec) -> tuple[object, str]:
    profile_level_id = str(codec.parameters.get("profile-level-id", "42e01f"))
    try:
        profile: object = parse_h264_profile_level_id(profile_level_id)[0]
    except ValueError:
        profile = profile_level_id.lower()
    return profile, str(codec.parameters.get("packetization-mode", "0"))


def compatible(a: Codec, b: Codec) -> bool:
    """True when packets produced for `a` decode as `b` (same format, clock and packetization)."""
    if a.mimeType.lower() != b.mimeType.lower() or a.clockRate != b.clockRate:
        return False
    if a.mimeType.lower() == "video/h264":
        return _h264_key(a) == _h264_key(b)
    return True


def primary_codec(codecs: Sequence[RTCRtpCodecParameters]) -> RTCRtpCodecParameters | None:
    """The codec a sender sends with: the first one that is not a retransmission format."""
    return next((c for c in codecs if not is_rtx(c)), None)


def restrict_codecs(
    transceiver: RTCRtpTransceiver, preferred_mime_types: Sequence[str]
) -> RTCRtpCodecParameters:
    """Keep only the first negotiated codec found in `preferred_mime_types` (and its RTX).

    Call between `setRemoteDescription(offer)` and `createAnswer()`: the answer then lists one
    codec per m-line, so a publisher cannot switch codecs under its subscribers' feet.
    """
    negotiated = aiortc_adapter.negotiated_codecs(transceiver)
    for mime_type in preferred_mime_types:
        for codec in negotiated:
            if codec.mimeType.lower() == mime_type.lower() and not is_rtx(codec):
                aiortc_adapter.set_negotiated_codecs(transceiver, _with_rtx(codec, negotiated))
                return codec
    offered = ", ".join(sorted({c.mimeType for c in negotiated if not is_rtx(c)})) or "none"
    raise CodecMismatchError(f"no codec among {list(preferred_mime_types)} (offered: {offered})")


def pin_to_codec(transceiver: RTCRtpTransceiver, codec: RTCRtpCodecParameters) -> None:
    """Make `transceiver` send `codec` (a publisher's), whichever side offers.

    If the remote side already offered (its codecs are negotiated), keep only the compatible
    one, with the remote's payload type; otherwise set codec preferences for our own offer.
    """
    negotiated = aiortc_adapter.negotiated_codecs(transceiver)
    if negotiated:
        match = next((c for c in negotiated if not is_rtx(c) and compatible(c, codec)), None)
        if match is None:
            raise CodecMismatchError(f"subscriber cannot receive {codec.mimeType}")
        aiortc_adapter.set_negotiated_codecs(transceiver, _with_rtx(match, negotiated))
        return
    capabilities = RTCRtpReceiver.getCapabilities(transceiver.kind)
    assert capabilities is not None
    preferences = [c for c in capabilities.codecs if not is_rtx(c) and compatible(c, codec)][:1]
    if not preferences:
        raise CodecMismatchError(f"this SFU cannot offer {codec.mimeType}")
    rtx = [c for c in capabilities.codecs if is_rtx(c)]
    transceiver.setCodecPreferences(preferences + rtx[:1])


def _with_rtx(
    codec: RTCRtpCodecParameters, negotiated: Sequence[RTCRtpCodecParameters]
) -> list[RTCRtpCodecParameters]:
    rtx = [c for c in negotiated if is_rtx(c) and c.parameters.get("apt") == codec.payloadType]
    return [codec, *rtx[:1]]
