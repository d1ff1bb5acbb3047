"""The RFC 3339 timestamps the Kubernetes API uses in statuses and annotations, as Unix time."""

from __future__ import annotations

import calendar
import time


def format_time(value: float) -> str:
    """Unix time as the RFC 3339 (seconds, UTC) the API uses in statuses and annotations."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value))


def parse_time(value: str | None) -> float | None:
    """Unix time of an RFC 3339 timestamp (fractions and offset ignored: UTC seconds), or None."""
    if not value:
        return None
    try:
        return float(calendar.timegm(time.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None
