"""Event-loop lag monitor: how late a periodic wake-up runs, the first sign of an
overloaded SFU process (every packet is forwarded on this loop).
"""

import asyncio
import time

from prometheus_client import CollectorRegistry

from switchboard_api import metrics as m

PROBE_INTERVAL_SECONDS = 0.25


class LoopLagMonitor:
    """Samples the event loop's scheduling delay and exports it as a histogram."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._histogram = m.histogram(m.SFU_EVENT_LOOP_LAG, registry)

    async def run(self) -> None:
        while True:
            scheduled = time.monotonic() + PROBE_INTERVAL_SECONDS
            await asyncio.sleep(PROBE_INTERVAL_SECONDS)
            self._histogram.observe(max(0.0, time.monotonic() - scheduled))
