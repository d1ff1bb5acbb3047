"""The Region's ScaleDownHeld condition: set while a due scale-down waits for missing or
stale reports, cleared when it no longer does, and unchanged (no write) in between."""

from __future__ import annotations

from typing import Any

from switchboard_operator.logic.observation import status_patch
from switchboard_operator.logic.region_status import RegionObservation, Scaling, region_status

HELD = "Demand needs fewer than 2 SFU pods, but the reports of media/sfu-b are missing."


def observation(held: str | None, *, autoscaling: bool = True) -> RegionObservation:
    scaling = Scaling(
        at_max=False,
        needed=1,
        max_replicas=4,
        last_scale_time=None,
        last_scale_reason=None,
        held_by_reports=held,
    )
    return RegionObservation(
        generation=1,
        sfu_desired=2,
        sfu_ready=1,
        sfu_draining=0,
        sfu_outdated=0,
        turn_enabled=False,
        turn_desired=0,
        turn_ready=0,
        turn_uris=(),
        scaling=scaling if autoscaling else None,
    )


def held(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "ScaleDownHeld")


def test_set_while_held_and_cleared_after():
    first = region_status(observation(None), [], "2026-12-03T08:00:00Z")
    assert held(first)["status"] == "False"
    during = region_status(observation(HELD), first["conditions"], "2026-12-03T08:01:00Z")
    assert (held(during)["status"], held(during)["reason"]) == ("True", "ReportsMissing")
    assert "media/sfu-b" in held(during)["message"]
    after = region_status(observation(None), during["conditions"], "2026-12-03T08:02:00Z")
    assert (held(after)["status"], held(after)["lastTransitionTime"]) == (
        "False",
        "2026-12-03T08:02:00Z",
    )


def test_an_unchanged_hold_writes_nothing():
    during = region_status(observation(HELD), [], "2026-12-03T08:01:00Z")
    again = region_status(observation(HELD), during["conditions"], "2026-12-03T08:05:00Z")
    assert status_patch(during, again) == {}


def test_disabling_autoscaling_clears_it():
    during = region_status(observation(HELD), [], "2026-12-03T08:01:00Z")
    off = region_status(observation(None, autoscaling=False), during["conditions"], "t")
    assert (held(off)["status"], held(off)["message"]) == ("False", "Autoscaling is disabled.")
