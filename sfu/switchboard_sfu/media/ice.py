"""Builds the SFU's RTCPeerConnections: max-bundle, no default STUN, one announced host address."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcconfiguration import RTCBundlePolicy

from . import aiortc_adapter


@dataclass(frozen=True)
class IceSettings:
    """Where the SFU can be reached.

    `announce_address` is the only host candidate address (the pod IP, the node address in
    hostNetwork mode, or a 127.x.y.z address on a local machine): no other interface is ever
    gathered. `ice_servers` are STUN/TURN servers for the SFU's own side (usually none).
    """

    announce_address: str
    ice_servers: Sequence[RTCIceServer] = field(default_factory=tuple)


def create_peer_connection(settings: IceSettings) -> RTCPeerConnection:
    """Return a peer connection that bundles everything and gathers only the announced address."""
    configuration = RTCConfiguration(
        # An explicit list, even empty: aiortc's default is a public STUN server.
        iceServers=list(settings.ice_servers),
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )
    pc = RTCPeerConnection(configuration)
    aiortc_adapter.restrict_host_candidates(pc, [settings.announce_address])
    return pc
