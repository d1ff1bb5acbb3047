"""The SFU's media layer: forwards RTP packets between aiortc peers without decoding them.

Typical use by the signalling layer (all on one asyncio loop)::

    counters = MediaCounters()                              # one per process, read by /metrics
    pc = create_peer_connection(IceSettings(announce_address=pod_ip))
    room = RoomMedia("ns/name", counters=counters, on_drop=disconnect_participant)

    @pc.on("track")                                        # publisher's offer being applied
    def on_track(track):
        publication = room.publish("alice", pc, track)     # call inside the "track" event

    # after setRemoteDescription(offer) and before createAnswer(): one codec per m-line,
    # and simulcast layers accepted where offered (the answer's text then gets a=simulcast)
    offered = simulcast_offers(offer_sdp)
    for transceiver in pc.getTransceivers():
        restrict_codecs(transceiver, ["video/VP8", "video/H264", "audio/opus"])
        if transceiver.mid in offered:
            accept_simulcast(transceiver, offered[transceiver.mid])
    answer_sdp = answer_simulcast(pc.localDescription.sdp, offered)  # after setLocalDescription

    subscription = room.subscribe("bob", bob_pc, publication)   # adds a sendonly transceiver,
    # ...then renegotiate bob_pc (createOffer / setLocalDescription / answer) as usual.

    @pc.on("datachannel")
    def on_channel(channel):
        room.add_data_channel("alice", channel)            # fanned out by channel label

Packets are tapped at each publisher's receiver before aiortc's jitter buffer (its decoder is
stopped), rewritten per subscriber (SSRC, payload type, sequence number, timestamp) and sent;
NACKs, PLI/FIR, REMB and sender reports are handled here. A simulcast publication's subscribers
each get one layer, chosen by their REMB and `Subscription.request_layer`. Only
`aiortc_adapter` touches aiortc's private names.
"""

from .codecs import CodecMismatchError, restrict_codecs
from .counters import MediaCounters
from .datachannels import DataChannelFanout
from .ice import IceSettings, create_peer_connection, watch_peer_connection
from .publication import Publication
from .room import DropReason, ParticipantDropped, RoomMedia, RoomMediaUsage
from .settings import ForwardingSettings
from .simulcast import SimulcastOffer, accept_simulcast, answer_simulcast, simulcast_offers
from .subscription import Subscription

__all__ = [
    "CodecMismatchError",
    "DataChannelFanout",
    "DropReason",
    "ForwardingSettings",
    "IceSettings",
    "MediaCounters",
    "ParticipantDropped",
    "Publication",
    "RoomMedia",
    "RoomMediaUsage",
    "SimulcastOffer",
    "Subscription",
    "accept_simulcast",
    "answer_simulcast",
    "create_peer_connection",
    "restrict_codecs",
    "simulcast_offers",
    "watch_peer_connection",
]
