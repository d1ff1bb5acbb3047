"""Event-loop lag monitor: how late a periodic wake-up runs, the first sign of an
overloaded SFU process (every packet is forwarded on this loop).
"""

import asyncio
import time

from prometheus_client import CollectorRegistry, Histogram

PROBE_INTERVAL_SECONDS = 0.25


class LoopLagMonitor:
    """Samples the event loop's scheduling delay and exports it as a histogram."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._histogram = Histogram(
            "switchboard_sfu_event_loop_lag_seconds",
            "How late event-loop probes ran beyond their scheduled time.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )

    async def run(self) -> None:
        while True:
            scheduled = time.monotonic() + PROBE_INTERVAL_SECONDS
            await asyncio.sleep(PROBE_INTERVAL_SECONDS)
            self._histogram.observe(max(0.0, time.monotonic() - scheduled))
