"""Whether a Pod has been Ready, read from the Pod alone (it survives an operator restart)."""

from __future__ import annotations

from typing import Any

from switchboard_operator.logic.pod_readiness import has_been_ready

START = "2026-12-03T08:00:00Z"


def pod(ready: str | None, transition: str | None = START, start: str | None = START) -> Any:
    status: dict[str, Any] = {"conditions": []}
    if start is not None:
        status["startTime"] = start
    if ready is not None:
        condition = {"type": "Ready", "status": ready}
        if transition is not None:
            condition["lastTransitionTime"] = transition
        status["conditions"].append(condition)
    return {"metadata": {"name": "sfu-0"}, "status": status}


def test_a_ready_pod_has_been_ready():
    assert has_been_ready(pod("True", "2026-12-03T08:00:07Z"))


def test_a_pod_not_ready_since_it_started_has_not():
    assert not has_been_ready(pod("False", START))
    # The first status may be written a little after the start.
    assert not has_been_ready(pod("False", "2026-12-03T08:00:04Z"))


def test_a_pod_that_turned_unready_after_it_started_has_been_ready():
    """Ready -> not Ready moves the transition time; staying not Ready does not."""
    assert has_been_ready(pod("False", "2026-12-03T08:00:40Z"))


def test_a_crash_looping_pod_that_never_got_ready_has_not():
    """Restarts do not move the transition of a condition that stayed False."""
    crashing = pod("False", START)
    crashing["status"]["containerStatuses"] = [{"name": "sfu", "restartCount": 4}]
    assert not has_been_ready(crashing)


def test_without_the_times_it_is_not_assumed():
    assert not has_been_ready(pod(None))
    assert not has_been_ready(pod("False", None))
    assert not has_been_ready(pod("False", "2026-12-03T08:00:40Z", start=None))
    assert not has_been_ready({"metadata": {"name": "sfu-0"}})
