"""Fans a participant's data-channel messages out to the rest of the room, with bounded buffers.

Channels are matched by label: a message arriving on a participant's "chat" channel goes to
every other participant's "chat" channel, so reliability (ordered/reliable or
unordered/no-retransmit) is whatever the participants negotiated for that label. A receiver
that cannot keep up (unsent backlog above the bound) is reported stalled and skipped from
then on; nothing here queues without limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiortc import RTCDataChannel

from .counters import MediaCounters

logger = logging.getLogger(__name__)

Message = bytes | str
Envelope = Callable[[str, str, Message], Message]


class DataChannelFanout:
    """Data-channel routing for one room."""

    def __init__(
        self,
        *,
        counters: MediaCounters,
        max_buffered_bytes: int,
        on_stalled: Callable[[str], None],
        envelope: Envelope | None = None,
    ) -> None:
        """`on_stalled(participant_id)` is called once per participant whose channel stalls;
        `envelope(sender_id, label, message)` may wrap each message (e.g. with its sender)."""
        self._counters = counters
        self._max_buffered_bytes = max_buffered_bytes
        self._on_stalled = on_stalled
        self._envelope = envelope
        self._channels: dict[str, dict[str, RTCDataChannel]] = {}

    def add_channel(self, participant_id: str, channel: RTCDataChannel) -> None:
        """Route messages from and to `channel`, one of `participant_id`'s channels."""
        label = channel.label
        self._channels.setdefault(label, {})[participant_id] = channel

        @channel.on("message")
        def on_message(message: Message) -> None:
            if self._channels.get(label, {}).get(participant_id) is channel:
                self.broadcast(participant_id, label, message)

    def channels_of(self, participant_id: str) -> dict[str, RTCDataChannel]:
        """The routed channels of `participant_id`, by label."""
        return {
            label: channels[participant_id]
            for label, channels in self._channels.items()
            if participant_id in channels
        }

    def remove_participant(self, participant_id: str) -> None:
        """Stop routing to and from every channel of `participant_id`."""
        for channels in self._channels.values():
            channels.pop(participant_id, None)

    def broadcast(self, sender_id: str, label: str, message: Message) -> None:
        """Send `message` from `sender_id` to every other participant's `label` channel."""
        self._counters.data_messages_received += 1
        if self._envelope is not None:
            message = self._envelope(sender_id, label, message)
        size = len(message.encode("utf8") if isinstance(message, str) else message)
        stalled = []
        for participant_id, channel in tuple(self._channels.get(label, {}).items()):
            if participant_id == sender_id or channel.readyState != "open":
                continue
            # Checked before sending, so a backlog never exceeds the bound by more than
            # one message.
            if channel.bufferedAmount > self._max_buffered_bytes:
                stalled.append(participant_id)
                continue
            channel.send(message)
            self._counters.data_messages_sent += 1
            self._counters.data_bytes_sent += size
        for participant_id in stalled:
            logger.warning(
                "data channel stalled participant=%s label=%s buffered_bytes=%d",
                participant_id,
                label,
                self._channels[label][participant_id].bufferedAmount,
            )
            self.remove_participant(participant_id)
            self._on_stalled(participant_id)
