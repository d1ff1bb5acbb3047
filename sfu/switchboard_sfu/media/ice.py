"""Builds the SFU's RTCPeerConnections: max-bundle, no default STUN, one announced host address,
and ICE consent checked often enough to notice a vanished peer within seconds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcconfiguration import RTCBundlePolicy

from . import aiortc_adapter
from .room import DropReason


@dataclass(frozen=True)
class IceSettings:
    """Where the SFU can be reached, and how soon a silent peer counts as gone.

    `announce_address` is the only host candidate address (the pod IP, the node address in
    hostNetwork mode, or a 127.x.y.z address on a local machine): no other interface is ever
    gathered. `ice_servers` are STUN/TURN servers for the SFU's own side (usually none).

    Consent (RFC 7675) is checked every `consent_interval_s` (+-20 %); each check is one
    STUN request with 0.5 s to answer, so a peer that stops answering loses consent after
    `consent_max_failures` checks, about `consent_max_failures` x (interval + 0.5 s) after
    its last answer (~10 s by default; RFC 7675's own ceiling is 30 s). Checks are cheap
    (two small datagrams per connection per second), and a healthy peer answers them even
    while it sends no media, so silence alone never ends a session.
    """

    announce_address: str
    ice_servers: Sequence[RTCIceServer] = field(default_factory=tuple)
    consent_interval_s: float = 1.0
    consent_max_failures: int = 7


def create_peer_connection(settings: IceSettings) -> RTCPeerConnection:
    """Return a peer connection that bundles everything and gathers only the announced address.

    The consent timing is process-wide (aioice keeps it in module constants): every peer
    connection of a process should be built with the same settings.
    """
    aiortc_adapter.set_consent_freshness(settings.consent_interval_s, settings.consent_max_failures)
    configuration = RTCConfiguration(
        # An explicit list, even empty: aiortc's default is a public STUN server.
        iceServers=list(settings.ice_servers),
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )
    pc = RTCPeerConnection(configuration)
    aiortc_adapter.restrict_host_candidates(pc, [settings.announce_address])
    return pc


def watch_peer_connection(pc: RTCPeerConnection, on_ended: Callable[[DropReason], None]) -> None:
    """Call `on_ended` once when `pc` stops working, with why: CONSENT_EXPIRED (the peer
    stopped answering consent checks; aiortc then closes the connection itself), ICE_FAILED
    (ICE or DTLS never connected) or PEER_CLOSED (the peer closed it, or it was closed here:
    the caller knows its own closes and ignores them)."""
    ended = False

    @pc.on("connectionstatechange")
    def on_state() -> None:
        nonlocal ended
        state = pc.connectionState
        if ended or state not in ("failed", "closed"):
            return
        ended = True
        if aiortc_adapter.consent_expired(pc):
            on_ended(DropReason.CONSENT_EXPIRED)
        elif state == "failed":
            on_ended(DropReason.ICE_FAILED)
        else:
            on_ended(DropReason.PEER_CLOSED)
