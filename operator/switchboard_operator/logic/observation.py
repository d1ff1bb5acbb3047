"""The status the operator writes when it has seen a Region or Room it does not yet act on.

Level-based: the desired status is a function of the object alone, and the caller writes
only the difference, so an object already observed costs no API write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switchboard_api.region import RegionConditionType
from switchboard_api.room import RoomConditionType, RoomPhase
from switchboard_operator.logic.conditions import set_condition

OBSERVED_REASON = "Observed"


def region_status(body: Mapping[str, Any], now: str) -> dict[str, Any]:
    status = dict(body.get("status") or {})
    generation = body["metadata"].get("generation")
    status["observedGeneration"] = generation
    status["conditions"] = set_condition(
        status.get("conditions") or [],
        type_=RegionConditionType.PROGRESSING,
        status="True",
        reason=OBSERVED_REASON,
        message="The operator has seen this generation of the Region.",
        observed_generation=generation,
        now=now,
    )
    return status


def room_status(body: Mapping[str, Any], now: str) -> dict[str, Any]:
    status = dict(body.get("status") or {})
    generation = body["metadata"].get("generation")
    status["observedGeneration"] = generation
    status.setdefault("phase", RoomPhase.PENDING.value)
    status["conditions"] = set_condition(
        status.get("conditions") or [],
        type_=RoomConditionType.SCHEDULED,
        status="False",
        reason=OBSERVED_REASON,
        message="The operator has seen this generation of the Room; it awaits placement.",
        observed_generation=generation,
        now=now,
    )
    return status


def status_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level status fields that differ (a JSON merge patch body), empty if none."""
    current = current or {}
    return {k: v for k, v in desired.items() if current.get(k) != v}
