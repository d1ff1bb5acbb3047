"""The operator's one back-off: a delay that starts small and doubles with each
consecutive failure, up to a cap. Pure; the work queue, API retries, the informer and the
SFU pod crash back-off all count their failures and ask it for the delay."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

_MAX_DOUBLINGS: Final = 64
"""Beyond this many doublings every cap has long been reached (and 2**n stays a float)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    first_seconds: float
    max_seconds: float

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` consecutive failures (1: the first)."""
        doublings = min(max(failures, 1) - 1, _MAX_DOUBLINGS)
        return min(self.first_seconds * 2.0**doublings, self.max_seconds)
