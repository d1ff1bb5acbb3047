"""Token-bucket rate limiting per key (an API key's name), with the clock passed in.

A bucket holds up to `burst` tokens, refills at `per_second`, and each request takes one;
a refused request learns how long until the next token arrives (its Retry-After).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """A sustained request rate and the burst allowed on top of it."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.per_second) and self.per_second > 0):
            raise ValueError(f"rate must be a positive number per second, got {self.per_second}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {self.burst}")


@dataclass(frozen=True)
class Admission:
    """Whether a request may proceed; if not, the seconds until one would."""

    allowed: bool
    retry_after: float = 0.0


class TokenBucket:
    """One key's bucket; it starts full."""

    __slots__ = ("_rate", "_tokens", "_updated_at")

    def __init__(self, rate: Rate, now: float) -> None:
        self._rate = rate
        self._tokens = float(rate.burst)
        self._updated_at = now

    @property
    def rate(self) -> Rate:
        return self._rate

    def tokens(self, now: float) -> float:
        """Tokens available at `now`."""
        self._refill(now)
        return self._tokens

    def take(self, now: float) -> Admission:
        """Take one token if there is one."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return Admission(allowed=True)
        return Admission(allowed=False, retry_after=(1.0 - self._tokens) / self._rate.per_second)

    def change_rate(self, rate: Rate, now: float) -> None:
        """Apply a new rate (an edited key policy) without handing out a fresh burst."""
        self._refill(now)
        self._rate = rate
        self._tokens = min(self._tokens, float(rate.burst))

    def _refill(self, now: float) -> None:
        # A clock that steps back (it should not: callers pass a monotonic one) refills nothing.
        elapsed = max(0.0, now - self._updated_at)
        self._tokens = min(float(self._rate.burst), self._tokens + elapsed * self._rate.per_second)
        self._updated_at = max(now, self._updated_at)


class RateLimiter:
    """A token bucket per key, created full on the key's first request.

    Keys are API key names, so the number of buckets is bounded by the configured keys;
    `retain` drops the buckets of keys that no longer exist.
    """

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def admit(self, key: str, rate: Rate, now: float) -> Admission:
        """Take one of `key`'s tokens, its bucket following `rate`."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(rate, now)
        elif bucket.rate != rate:
            bucket.change_rate(rate, now)
        return bucket.take(now)

    def retain(self, keys: set[str]) -> None:
        """Forget the buckets of every key not in `keys`."""
        for key in self._buckets.keys() - keys:
            del self._buckets[key]
