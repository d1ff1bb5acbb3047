"""Demand a region has beyond the rooms on its pods, as the capacity picture holds it:
rooms that wait for it (or could not be placed, with it as their own region), and rooms
that spilled from it to a farther region because it was full. And whether a region's
reports are fresh enough to take capacity away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from switchboard_operator.logic.capacity.picture import CapacityPicture


@dataclass
class DemandElsewhere:
    """Rooms (by key) counting towards a region they are not placed in: (region, units)."""

    waiting: dict[str, tuple[str, float]] = field(default_factory=dict)
    spilled: dict[str, tuple[str, float]] = field(default_factory=dict)

    def want(self, room: str, region: str | None, units: float) -> set[str]:
        """`room` waits for `region` (None: for none); the regions whose demand changed."""
        previous = self.waiting.pop(room, None)
        if region is not None:
            self.waiting[room] = (region, units)
        if previous == self.waiting.get(room):
            return set()
        return {r for r in (previous and previous[0], region) if r}

    def spill(self, room: str, home: str, units: float) -> None:
        self.spilled[room] = (home, units)

    def placed_elsewhere_no_more(self, room: str) -> str | None:
        """`room` left the pod it spilled to; the home whose demand changed, if any."""
        spilled = self.spilled.pop(room, None)
        return None if spilled is None else spilled[0]

    def units(self, region: str) -> float:
        return math.fsum(
            units
            for home, units in (*self.waiting.values(), *self.spilled.values())
            if home == region
        )

    def copy(self) -> DemandElsewhere:
        return DemandElsewhere(dict(self.waiting), dict(self.spilled))


def reports_fresh(picture: CapacityPicture, region: str, now: float) -> bool:
    """Whether every running pod of the region that serves, served or holds rooms reported
    within the freshness window: its load is known for all of them, so capacity may be
    taken away."""
    return not unreported_pods(picture, region, now)


def unreported_pods(picture: CapacityPicture, region: str, now: float) -> tuple[str, ...]:
    """The region's pods (keys, sorted) whose reports are missing or stale although they
    serve, served or hold rooms: while there is one, no capacity is taken away.

    A pod that served and then went silent is not Ready either (an SFU that cannot reach
    the control plane fences itself and fails its readiness probe), and its reports are
    what is missing: it holds scale-down until it reports again. That it served is read
    from the Pod itself (`been_ready`, which survives an operator restart), or from this
    process's memory of it taking rooms (`opened`). Pods that have not started yet, and
    pods on their way out (drained, deleted, ended), are not waited for.
    """
    fresh_after = now - picture.model.report_freshness_seconds
    return tuple(
        sorted(
            p.key
            for p in picture.region_pods(region)
            if (p.ready or p.been_ready or p.opened or p.rooms)
            and not (p.draining or p.failed or p.ended)
            and p.retired is None
            and (p.reported_at is None or p.reported_at < fresh_after)
        )
    )
