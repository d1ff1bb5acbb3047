"""The outgoing track object of a forwarded stream: a placeholder that never yields frames."""

from __future__ import annotations

import asyncio

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack


class ForwardedTrack(MediaStreamTrack):
    """Stands in for a publisher's track on a subscriber's sender.

    Packets reach the subscriber straight from the forwarding core; the sender's own media
    loop only ever waits here, so it neither encodes nor polls.
    """

    def __init__(self, kind: str, track_id: str) -> None:
        super().__init__()
        self.kind = kind
        self._id = track_id
        self._ended = asyncio.Event()

    async def recv(self) -> None:  # type: ignore[override]
        await self._ended.wait()
        raise MediaStreamError

    def stop(self) -> None:
        self._ended.set()
        super().stop()
