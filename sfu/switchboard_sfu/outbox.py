"""A bounded outbox for one signalling WebSocket: events queue here and one writer task
sends them, so a client that stops reading costs at most a fixed amount of memory and is
then dropped with a reason instead of buffering without end.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger(__name__)

MAX_QUEUED_MESSAGES = 256
"""Messages waiting beyond aiohttp's own send buffer before the client is dropped."""
SEND_TIMEOUT_SECONDS = 10.0
"""One message stuck this long in the socket means the client stopped reading."""

SLOW_CONSUMER = "slow-consumer"


class Outbox:
    """Queue of outgoing JSON messages with a hard bound; overflow calls `on_overflow` once."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        on_overflow: Callable[[str], None],
        max_messages: int = MAX_QUEUED_MESSAGES,
        send_timeout: float = SEND_TIMEOUT_SECONDS,
    ) -> None:
        self._ws = ws
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=max_messages)
        self._on_overflow = on_overflow
        self._send_timeout = send_timeout
        self._overflowed = False
        self._closed = False

    def put(self, message: dict[str, object]) -> bool:
        """Queue `message`; False (and the client is being dropped) if the bound is hit."""
        if self._closed or self._overflowed:
            return False
        try:
            self._queue.put_nowait(json.dumps(message, separators=(",", ":")))
        except asyncio.QueueFull:
            self._overflow()
            return False
        return True

    def close(self) -> None:
        """Stop accepting messages; the writer ends after sending what is queued."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def run(self) -> None:
        """Send queued messages until closed; returns early if the socket fails."""
        while True:
            text = await self._queue.get()
            try:
                if text is None or self._ws.closed:
                    return
                async with asyncio.timeout(self._send_timeout):
                    await self._ws.send_str(text)
            except TimeoutError:
                self._overflow()
                return
            except ConnectionError:
                return
            finally:
                self._queue.task_done()

    async def flush(self) -> None:
        """Wait until everything queued so far has been handed to the socket (callers
        bound the wait: a stalled client never gets there)."""
        await self._queue.join()

    def _overflow(self) -> None:
        if self._overflowed:
            return
        self._overflowed = True
        log.warning("signalling client dropped reason=%s", SLOW_CONSUMER)
        self._on_overflow(SLOW_CONSUMER)
