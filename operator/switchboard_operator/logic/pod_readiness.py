"""Whether a Pod has been Ready at some time, read from the Pod alone (no memory, no write),
so that an operator that restarts knows it as well as the one before it did.

Why the Ready condition's lastTransitionTime against the Pod's startTime, and not the
container statuses: `restartCount` grows as much for a container that crashes before it
ever got Ready as for one that served and then crashed, and `started` only says the
startup probe (or, without one, the start) passed, not readiness. The Ready condition
starts False when the node first writes the Pod's status, in the same sync that sets
`startTime`, and its lastTransitionTime moves only when its status changes. So a Ready
condition that is False with a transition later than the start went True -> False: the
Pod was Ready before.

Both times have whole seconds, and the node may write the first status a little after it
set the start: the transition must be later than the start by more than
`READY_CHANGE_SLACK_SECONDS` (the slack the SFU pod plan's never-Ready check uses too).
The error this leaves is on the safe side for the autoscaler: a Pod taken for "has been
Ready" that was not holds scale-down until it reports (or is deleted as never Ready); a
Pod Ready and un-Ready again within the slack of its start is not waited for, as before
this was read from the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from switchboard_operator.logic.timestamps import parse_time

READY_CHANGE_SLACK_SECONDS: Final = 5.0
"""A Ready condition that last changed this soon after its Pod or container started was
set as it started (timestamps are whole seconds, status writes lag): it was never True."""


def has_been_ready(pod: Mapping[str, Any]) -> bool:
    """Ready now, or its Ready condition turned False after the Pod started."""
    status = pod.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None:
        return False
    if ready.get("status") == "True":
        return True
    started = parse_time(status.get("startTime"))
    return started is not None and ready_changed_after(pod, started)


def ready_changed_after(pod: Mapping[str, Any], start: float) -> bool:
    """Whether the Pod's Ready condition changed later than `start` (beyond the slack)."""
    return any(
        (t := parse_time(c.get("lastTransitionTime"))) is not None
        and t > start + READY_CHANGE_SLACK_SECONDS
        for c in (pod.get("status") or {}).get("conditions") or []
        if c.get("type") == "Ready"
    )
