"""One published track: the tapped receiver, its layers and its subscribers.

Every RTP packet the publisher sends is handled here once (RTX unwrapped, routed to its layer,
stored for NACKs, frame and keyframe boundaries found) and then handed to each subscription
that receives that layer, to be rewritten and sent. Keyframe requests and the bitrate bound
travel the other way, throttled and merged.

A track sent as simulcast has one layer per RID of the publisher's offer; its packets are
routed by SSRC, learnt from the RID header extensions (RFC 8852). Any other track has a
single layer, and is handed to the native fast path (`fastpath`) when it is built: its
`Track` then keeps the stream's state, and only subscriptions not yet native are forwarded
here. Simulcast tracks stay on this Python path: the native track follows one stream, and
layer switches (several streams, VP8 picture ids) are only built here.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiortc import RTCRtpTransceiver
from aiortc.clock import current_ntp_time
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RtcpPsfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)

from . import aiortc_adapter, fastpath
from .codecs import is_rtx, primary_codec
from .counters import MediaCounters
from .keyframes import is_keyframe_start, keyframe_size
from .layer import ClockMapping, PublishedLayer
from .layer_pausing import LayerPausing
from .layer_selection import LayerState
from .settings import ForwardingSettings
from .simulcast import accepted_rids

if TYPE_CHECKING:
    from .subscription import Subscription

logger = logging.getLogger(__name__)

LayersNeeded = Callable[["Publication", tuple[str, ...]], None]


class Publication:
    """A publisher's track as the forwarding core sees it (created by `RoomMedia.publish`)."""

    def __init__(
        self,
        *,
        participant_id: str,
        transceiver: RTCRtpTransceiver,
        track: MediaStreamTrack,
        settings: ForwardingSettings,
        counters: MediaCounters,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.participant_id = participant_id
        self.kind: str = track.kind
        self.track_id: str = track.id
        self.packets_received = 0
        self.bytes_received = 0
        self.layers_needed: LayersNeeded | None = None
        """Told which simulcast layers subscribers need (the others may be paused by the
        publisher); only publishers with a message channel can act on it."""
        self._transceiver = transceiver
        self._settings = settings
        self._counters = counters
        self._loop = asyncio.get_running_loop()
        self._subscriptions: list[Subscription] = []
        self._layers: tuple[PublishedLayer, ...] = ()
        self._by_rid: dict[str, PublishedLayer] = {}
        self._by_ssrc: dict[int, PublishedLayer] = {}
        self._simulcast = False
        self._parameters: RTCRtpReceiveParameters | None = None
        self._codecs: dict[int, RTCRtpCodecParameters] = {}
        self._rtx_apt: dict[int, int] = {}
        # RTX SSRC -> SSRC of the stream it repairs (shared with the receiver tap).
        self._rtx_ssrcs: dict[int, int] = {}
        self._mime_type = ""
        self._pending_keyframe_requests: dict[PublishedLayer, asyncio.TimerHandle] = {}
        self._uplink_estimate_bps: int | None = None
        self._last_bitrate_bound: int | None = None
        self._pausing: LayerPausing | None = None
        # The native twin of a single-layer publication's receive state, once in use.
        self._track: fastpath.Track | None = None
        self._lost_upstream_seen = 0
        # Event loop time of the last packet the native outputs forwarded.
        self.last_native_forward = 0.0
        self._feedback_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self._tap = aiortc_adapter.tap_receiver(transceiver.receiver, self)

    # --- what the room and subscriptions use ---------------------------------------------

    @property
    def codec(self) -> RTCRtpCodecParameters | None:
        """The codec the publisher sends with (known once its offer has been applied)."""
        if self._parameters is not None:
            return primary_codec(self._parameters.codecs)
        return primary_codec(aiortc_adapter.negotiated_codecs(self._transceiver))

    def codec_for(self, payload_type: int) -> RTCRtpCodecParameters | None:
        return self._codecs.get(payload_type)

    @property
    def media_payload_types(self) -> list[int]:
        """The publisher's payload types that carry media (RTX excluded)."""
        return [pt for pt in self._codecs if pt not in self._rtx_apt]

    @property
    def layers(self) -> tuple[PublishedLayer, ...]:
        """The track's streams in the publisher's order: one, or its simulcast layers."""
        if not self._layers:
            rids = accepted_rids(self._transceiver) if self.kind == "video" else ()
            size = self._settings.retransmission_history
            if rids:
                self._layers = tuple(PublishedLayer(rid, i, size) for i, rid in enumerate(rids))
                self._by_rid = {layer.name: layer for layer in self._layers}
                self._simulcast = True
                self._pausing = LayerPausing(rids, self._settings.pausing)
            else:
                self._layers = (PublishedLayer(None, 0, size),)
        return self._layers

    @property
    def simulcast(self) -> bool:
        return len(self.layers) > 1

    @property
    def layer_names(self) -> tuple[str, ...]:
        """RIDs of the simulcast layers, lowest first (empty without simulcast)."""
        return tuple(layer.name for layer in self.ordered_layers()) if self.simulcast else ()

    def layer(self, rid: str) -> PublishedLayer | None:
        self.layers  # noqa: B018 (creates them)
        return self._by_rid.get(rid)

    def ordered_layers(self) -> list[PublishedLayer]:
        """Layers from the lowest to the highest resolution (offer order until every
        layer's frame size is known)."""
        layers = list(self.layers)
        if all(layer.size is not None for layer in layers):
            layers.sort(key=lambda x: (x.size[0] * x.size[1], x.index))  # type: ignore[index]
        return layers

    def layer_states(self, now: float, *, include_paused: bool = True) -> list[LayerState]:
        """The layers as `layer_selection` sees them, lowest first; a layer paused at our
        request counts as available (see `LayerPausing`) unless `include_paused` is False."""
        pausing = self._pausing if include_paused and self.layers_needed is not None else None
        return [
            LayerState(
                rid=layer.name,
                bitrate_bps=layer.meter.bps,
                height=layer.size[1] if layer.size is not None else None,
                available=(
                    pausing.available(layer.name, now, active=layer.active(now))
                    if pausing is not None
                    else layer.active(now)
                ),
            )
            for layer in self.ordered_layers()
        ]

    @property
    def media_ssrc(self) -> int | None:
        """The SSRC of the first layer's stream (the track's, without simulcast)."""
        return self.layers[0].ssrc

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subscriptions)

    def add_subscription(self, subscription: Subscription) -> None:
        self._subscriptions.append(subscription)

    def remove_subscription(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            for layer in self.layers:
                self.unwatch_layer(subscription, layer)
            self.subscriber_bitrate_changed()
            self.update_needed_layers()

    def watch_layer(self, subscription: Subscription, layer: PublishedLayer) -> None:
        """Hand `layer`'s packets to `subscription.forward` (it forwards it, or waits to
        switch to it, in Python)."""
        if subscription not in layer.consumers:
            layer.consumers.append(subscription)
            self._consumers_changed(layer)

    def unwatch_layer(self, subscription: Subscription, layer: PublishedLayer) -> None:
        if subscription in layer.consumers:
            layer.consumers.remove(subscription)
            self._consumers_changed(layer)

    @property
    def native(self) -> bool:
        """True while the native fast path receives this publication's packets."""
        return self._track is not None

    def forward_natively(self, subscription: Subscription, output: fastpath.Output) -> bool:
        """From now on `output` (the subscription's native twin) gets every packet; False
        when this publication is not received natively."""
        if self._track is None:
            return False
        self._track.add_output(output)
        self.unwatch_layer(subscription, self.layers[0])
        return True

    def forward_in_python(self, subscription: Subscription, output: fastpath.Output) -> None:
        """Stop forwarding to `output`; the subscription's own `forward` takes over."""
        if self._track is not None:
            self._track.remove_output(output)
        if subscription in self._subscriptions:
            self.watch_layer(subscription, self.layers[0])

    def history_packet(
        self, layer: PublishedLayer, sequence_number: int
    ) -> tuple[int, RtpPacket] | None:
        """(extended sequence number, packet) of `layer` for a publisher sequence number, if
        still kept."""
        if self._track is not None and layer is self.layers[0]:
            kept = self._track.history_packet(sequence_number)
            return None if kept is None else (kept[0], self._tap.parse(kept[1]))
        return layer.history_packet(sequence_number)

    def request_keyframe(self, layer: PublishedLayer | None = None) -> None:
        """Ask the publisher for a keyframe of `layer` (default: the first), at most once per
        `keyframe_request_interval_s` per layer."""
        if self.kind != "video" or self._closed:
            return
        layer = layer or self.layers[0]
        wait = layer.last_keyframe_request + self._settings.keyframe_request_interval_s
        wait -= self._loop.time()
        if wait <= 0:
            self._send_keyframe_request(layer)
        elif layer not in self._pending_keyframe_requests:
            self._pending_keyframe_requests[layer] = self._loop.call_later(
                wait, self._send_keyframe_request, layer
            )

    def subscriber_bitrate_changed(self, bitrate_bps: int | None = None) -> None:
        """Re-send the bitrate bound at once when it dropped noticeably (congestion).

        `bitrate_bps`: the one subscriber's new REMB that changed. After every change the
        bound is either at least 90 % of the last one sent or being re-sent, so a REMB at or
        above that mark cannot have brought it below: the O(subscribers) bound is not worked
        out again (every subscriber reports about once a second)."""
        last = self._last_bitrate_bound
        if bitrate_bps is not None and last is not None and bitrate_bps >= 0.9 * last:
            return
        bound = self.bitrate_bound()
        if self._last_bitrate_bound is None or bound < 0.9 * self._last_bitrate_bound:
            self._spawn(self._send_bitrate_bound())

    def bitrate_bound(self) -> int:
        """What the publisher may send: our own estimate, capped, and without simulcast also
        the subscribers' REMB (with simulcast, a constrained subscriber gets a lower layer
        instead of lowering everyone's)."""
        bound = self._settings.max_publisher_bitrate_bps
        if self._uplink_estimate_bps is not None:
            bound = min(bound, self._uplink_estimate_bps)
        if not self.simulcast:
            for subscription in self._subscriptions:
                if subscription.remb_bps is not None:
                    bound = min(bound, subscription.remb_bps)
        return bound

    def update_needed_layers(self) -> None:
        """Tell the publisher which layers subscribers need (see `LayerPausing`)."""
        listener = self.layers_needed
        pausing = self._pausing
        if listener is None or pausing is None or self._closed:
            return
        now = self._loop.time()
        needed, resumed = pausing.update(
            now,
            used={layer.name for s in self._subscriptions for layer in s.layers_in_use},
            lowest=self.ordered_layers()[0].name,
            active={layer.name for layer in self.layers if layer.active(now)},
        )
        if resumed:
            # Our estimate of the publisher's uplink was made while we held layers back: it
            # says nothing about room for more. Measure afresh (the publisher's own
            # congestion control meanwhile), as at the start.
            self._uplink_estimate_bps = None
            self._tap.reset_bandwidth_estimate()
            self._spawn(self._send_bitrate_bound())
        if needed is not None:
            listener(self, needed)

    async def close(self) -> None:
        """Stop forwarding: subscriptions are closed, timers cancelled."""
        self._closed = True
        for subscription in tuple(self._subscriptions):
            await subscription.close()
        if self._track is not None:
            self._tap.forward_in_python(self._track)
            self._track = None
        for handle in self._pending_keyframe_requests.values():
            handle.cancel()
        for task in (self._feedback_task, *self._background):
            if task is not None:
                task.cancel()
        for layer in self._layers:
            layer.clear()

    # --- ReceiverListener: called by the tapped receiver ---------------------------------

    def receiver_started(self, parameters: RTCRtpReceiveParameters) -> None:
        self._parameters = parameters
        for codec in parameters.codecs:
            self._codecs[codec.payloadType] = codec
            if is_rtx(codec) and isinstance(codec.parameters.get("apt"), int):
                self._rtx_apt[codec.payloadType] = int(codec.parameters["apt"])
        if self.simulcast:
            self._tap.receive_layers(self._rtx_ssrcs)
        else:
            for encoding in parameters.encodings:
                if encoding.rtx is not None:
                    self._rtx_ssrcs[encoding.rtx.ssrc] = encoding.ssrc
        primary = self.codec
        self._mime_type = primary.mimeType if primary is not None else ""
        logger.info(
            "publication started participant=%s kind=%s codec=%s layers=%s",
            self.participant_id,
            self.kind,
            self._mime_type,
            ",".join(self.layer_names) or "1",
        )
        if self.kind == "video" and self._feedback_task is None:
            self._feedback_task = self._loop.create_task(self._feedback_loop())

    def rtp_received(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        if self._closed:
            return
        counters = self._counters
        counters.rtp_packets_received += 1
        counters.rtp_payload_bytes_received += len(packet.payload)
        self.packets_received += 1
        self.bytes_received += len(packet.payload)

        routed = self._route(packet)
        if routed is None:
            return
        layer, packet = routed
        if not self._simulcast and self._received_natively(packet):
            return
        now = self._loop.time()
        resumed = self._simulcast and not layer.active(now)
        received = layer.receive(packet, now)
        if received is None:
            return  # a duplicate: subscribers already have it
        extended, frame_start, skipped = received
        if resumed:
            # A layer started or resumed: subscribers may want it now rather than next tick.
            for subscription in tuple(self._subscriptions):
                subscription.select_layer(now)
        counters.rtp_packets_lost_upstream += skipped
        consumers = layer.consumers
        if not consumers and not self._simulcast:
            return
        keyframe = (
            frame_start
            and self.kind == "video"
            and is_keyframe_start(self._mime_type, packet.payload)
        )
        if keyframe and self._simulcast:
            # Frame sizes order the layers and answer subscribers' height requests.
            layer.size = keyframe_size(self._mime_type, packet.payload) or layer.size
        if not consumers:
            return
        abs_send_time = (current_ntp_time() >> 14) & 0x00FFFFFF
        started = time.perf_counter()
        for subscription in tuple(consumers):
            subscription.forward(
                layer,
                packet,
                extended,
                frame_start=frame_start,
                keyframe=keyframe,
                abs_send_time=abs_send_time,
                now=now,
            )
        counters.forwarding_seconds += time.perf_counter() - started

    def sender_report_received(self, packet: RtcpSrPacket) -> None:
        layer = self._by_ssrc.get(packet.ssrc) if self._simulcast else self.layers[0]
        if layer is not None and packet.ssrc == layer.ssrc:
            info = packet.sender_info
            layer.clock = ClockMapping(
                ntp=info.ntp_timestamp, rtp=info.rtp_timestamp, at=self._loop.time()
            )

    def bitrate_estimated(self, bitrate_bps: int) -> None:
        self._uplink_estimate_bps = bitrate_bps
        self.subscriber_bitrate_changed()

    def native_burst(
        self, packets: int, payload_bytes: int, sent_packets: int, sent_bytes: int
    ) -> None:
        """Packets the native fast path received and forwarded to the native outputs."""
        if self._closed:
            return
        counters = self._counters
        counters.rtp_packets_received += packets
        counters.rtp_payload_bytes_received += payload_bytes
        self.packets_received += packets
        self.bytes_received += payload_bytes
        self._native_sent(sent_packets, sent_bytes)

    def native_packet(self, record: aiortc_adapter.NativeRecord, packet: RtpPacket | None) -> None:
        """A packet of a native burst, for the subscriptions still forwarded in Python."""
        if not self._closed:
            self._forward_native_packet(record, packet)

    def native_forwarding_time(self, seconds: float) -> None:
        self._counters.forwarding_seconds += seconds

    # --- internals ------------------------------------------------------------------------

    def _forward_natively(self) -> None:
        """Hand this publication's receive state to the native module (media SSRC known)."""
        if self.media_ssrc is None:
            return
        track = fastpath.new_track(
            owner=self._tap,
            media_ssrc=self.media_ssrc,
            media_payload_types=self.media_payload_types,
            codec=self._mime_type if self.kind == "video" else "",
            history_size=self._settings.retransmission_history,
            estimate_bitrate=aiortc_adapter.estimates_bitrate(self._transceiver.receiver),
        )
        if self._tap.forward_natively(fastpath.new_ingress, track):
            self._track = track
            self._consumers_changed(self.layers[0])
            logger.info(
                "publication forwarded natively participant=%s kind=%s",
                self.participant_id,
                self.kind,
            )

    def _received_natively(self, packet: RtpPacket) -> bool:
        """Hand a packet that reached Python (a repair, a new source's first) to the native
        track, which keeps the stream's state once in use; False when it is not in use."""
        if self._track is None and self._settings.native_forwarding and fastpath.available():
            self._forward_natively()
        if self._track is None:
            return False
        data, ids = self._tap.serialize(packet)
        record = self._track.ingest(data, ids)
        if record is not None:
            self._native_forwarded(record, packet)
        return True

    def _consumers_changed(self, layer: PublishedLayer) -> None:
        if self._track is not None and layer is self.layers[0]:
            # The native track hands every packet's bytes over only while Python forwards too.
            self._track.python_forwarding = bool(layer.consumers)

    def _native_forwarded(
        self, record: aiortc_adapter.NativeRecord, packet: RtpPacket | None
    ) -> None:
        """Counters, and the subscriptions still forwarded in Python, for a packet handed
        to the native track."""
        self._native_sent(record[10], record[11])
        self._forward_native_packet(record, packet)

    def _native_sent(self, sent_packets: int, sent_bytes: int) -> None:
        """Count what the native outputs sent, and the upstream losses the track saw."""
        counters = self._counters
        track = self._track
        assert track is not None
        lost = track.lost_upstream
        if lost != self._lost_upstream_seen:
            counters.rtp_packets_lost_upstream += lost - self._lost_upstream_seen
            self._lost_upstream_seen = lost
        if sent_packets:
            counters.rtp_packets_sent += sent_packets
            counters.rtp_payload_bytes_sent += sent_bytes
            self.last_native_forward = self._loop.time()

    def _forward_native_packet(
        self, record: aiortc_adapter.NativeRecord, packet: RtpPacket | None
    ) -> None:
        """Forward a packet the native track handled to the subscriptions still in Python."""
        if record[9]:
            return  # a duplicate: subscribers already have it
        now = self._loop.time()
        layer = self.layers[0]
        raw = record[12]
        if raw is None or not layer.consumers:
            return
        if packet is None:
            packet = self._tap.parse(raw)
        abs_send_time = (current_ntp_time() >> 14) & 0x00FFFFFF
        for subscription in tuple(layer.consumers):
            subscription.forward(
                layer,
                packet,
                record[6],
                frame_start=record[7],
                keyframe=record[8],
                abs_send_time=abs_send_time,
                now=now,
            )

    def _route(self, packet: RtpPacket) -> tuple[PublishedLayer, RtpPacket] | None:
        """The layer of a packet, and the packet itself (an RTX repair unwrapped); None
        for packets nobody forwards (probes, unknown streams or payload types)."""
        apt = self._rtx_apt.get(packet.payload_type)
        if self._simulcast:
            layer = self._by_ssrc.get(packet.ssrc) or self._learn_layer(packet, apt is not None)
            if layer is None or packet.ssrc != (layer.ssrc if apt is None else layer.rtx_ssrc):
                return None
            media_ssrc = layer.ssrc
        else:
            layer = self.layers[0]
            media_ssrc = layer.ssrc
            if apt is not None and self._rtx_ssrcs.get(packet.ssrc, media_ssrc) != media_ssrc:
                return None
        if apt is not None:
            # Payload-less RTX packets are bandwidth probes, not repairs.
            if len(packet.payload) < 2 or media_ssrc is None:
                return None
            return layer, unwrap_rtx(packet, payload_type=apt, ssrc=media_ssrc)
        if packet.payload_type not in self._codecs:
            return None
        if not self._simulcast and packet.ssrc != layer.ssrc:
            self._switch_source(layer, packet.ssrc)
        return layer, packet

    def _learn_layer(self, packet: RtpPacket, rtx: bool) -> PublishedLayer | None:
        """The layer a packet of a new SSRC belongs to, from its RID header extension."""
        extensions = packet.extensions
        rid = extensions.repaired_rtp_stream_id if rtx else extensions.rtp_stream_id
        layer = self._by_rid.get(rid) if rid is not None else None
        if layer is None:
            return None
        if rtx:
            if layer.rtx_ssrc is not None:
                self._by_ssrc.pop(layer.rtx_ssrc, None)
                self._rtx_ssrcs.pop(layer.rtx_ssrc, None)
            layer.rtx_ssrc = packet.ssrc
        else:
            if layer.ssrc is not None:
                self._by_ssrc.pop(layer.ssrc, None)
                logger.info(
                    "publication layer source changed participant=%s rid=%s",
                    self.participant_id,
                    layer.name,
                )
                self._restart_layer(layer, packet.ssrc)
            layer.ssrc = packet.ssrc
        if layer.ssrc is not None and layer.rtx_ssrc is not None:
            self._rtx_ssrcs[layer.rtx_ssrc] = layer.ssrc
        self._by_ssrc[packet.ssrc] = layer
        return layer

    def _switch_source(self, layer: PublishedLayer, ssrc: int) -> None:
        if layer.ssrc is not None:
            logger.info(
                "publication source changed participant=%s kind=%s", self.participant_id, self.kind
            )
        self._restart_layer(layer, ssrc)

    def _restart_layer(self, layer: PublishedLayer, ssrc: int) -> None:
        layer.restart(ssrc)
        if self._track is not None:
            self._tap.forward_in_python(self._track)
            self._track.reset(ssrc)
            self._tap.forward_natively(fastpath.new_ingress, self._track)
        for subscription in tuple(layer.consumers):
            subscription.source_changed(layer)

    def _send_keyframe_request(self, layer: PublishedLayer) -> None:
        self._pending_keyframe_requests.pop(layer, None)
        if layer.ssrc is None or self._closed:
            return
        layer.last_keyframe_request = self._loop.time()
        self._counters.keyframe_requests_sent += 1
        pli = RtcpPsfbPacket(
            fmt=RTCP_PSFB_PLI,
            ssrc=aiortc_adapter.rtcp_ssrc(self._transceiver),
            media_ssrc=layer.ssrc,
        )
        self._spawn(self._tap.send_rtcp(pli))

    async def _send_bitrate_bound(self) -> None:
        ssrcs = [layer.ssrc for layer in self.layers if layer.ssrc is not None]
        if not ssrcs or self.kind != "video":
            return
        bound = self.bitrate_bound()
        self._last_bitrate_bound = bound
        remb = RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP,
            ssrc=aiortc_adapter.rtcp_ssrc(self._transceiver),
            media_ssrc=0,
            fci=pack_remb_fci(bound, ssrcs),
        )
        await self._tap.send_rtcp(remb)

    async def _feedback_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._settings.bitrate_feedback_interval_s)
            await self._send_bitrate_bound()
            if self.simulcast:
                now = self._loop.time()
                for subscription in tuple(self._subscriptions):
                    subscription.select_layer(now)
                self.update_needed_layers()

    def _spawn(self, coroutine: object) -> None:
        task = self._loop.create_task(coroutine)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)
