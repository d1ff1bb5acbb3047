"""The Region reconciler creates each SFU pod once, even when a pass runs before the Pod
watch has shown the pods the previous pass created (the race that doubled a roll's surge),
and replaces pods whose SFU ended: with a back-off after a crash, at once after a clean exit."""

from __future__ import annotations

from typing import Any

from switchboard_operator.logic.sfu_pod_plan import (
    UNOBSERVED_POD_SECONDS,
    SfuPodMemory,
    plan_region_pods,
)
from switchboard_operator.reconcilers.regions.pod_views import pod_view

NOW = 1_000_000.0
HASH = "template-hash"


def pod(name: str, **status: Any) -> dict[str, Any]:
    """An SFU pod as the Pod watch delivers it."""
    return {
        "metadata": {
            "name": name,
            "namespace": "media",
            "uid": f"uid-{name}",
            "labels": {"switchboard.dev/pod-template-hash": HASH},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "status": status or {"phase": "Running"},
    }


def ended(name: str, phase: str, reason: str, exit_code: int) -> dict[str, Any]:
    """The pod once its SFU process ended (restartPolicy Never)."""
    terminated = {"reason": reason, "exitCode": exit_code}
    return pod(
        name,
        phase=phase,
        containerStatuses=[{"name": "sfu", "state": {"terminated": terminated}}],
    )


def plan(pods: list[dict[str, Any]], desired: int, memory: SfuPodMemory, now: float = NOW):
    views = [pod_view(p, lambda _pod, _uid: False) for p in pods]
    return plan_region_pods(views, desired, HASH, memory, now)


def test_pods_created_but_not_yet_watched_are_not_created_again() -> None:
    first = plan([], 2, SfuPodMemory())
    assert first.create == 2
    memory = first.memory.created("eu-sfu-a", NOW).created("eu-sfu-b", NOW)

    # e.g. triggered by the Created Event, before the watch shows the pods
    assert plan([], 2, memory, NOW + 1).create == 0

    watched = plan([pod("eu-sfu-a"), pod("eu-sfu-b")], 2, memory, NOW + 2)
    assert watched.create == 0
    assert watched.memory.unobserved == {}


def test_a_created_pod_the_watch_never_shows_is_replaced_after_a_while() -> None:
    memory = SfuPodMemory().created("eu-sfu-a", NOW)
    assert plan([], 1, memory, NOW + UNOBSERVED_POD_SECONDS - 1).create == 0
    assert plan([], 1, memory, NOW + UNOBSERVED_POD_SECONDS + 1).create == 1


def test_a_pod_that_exited_after_draining_is_replaced_at_once_without_a_warning() -> None:
    exited = plan([ended("eu-sfu-a", "Succeeded", "Completed", 0)], 1, SfuPodMemory())
    assert exited.delete == ["eu-sfu-a"]
    assert exited.create == 1  # the replacement, with no back-off
    assert exited.retry_after is None
    assert exited.crashed == []
    notice = exited.deleted["eu-sfu-a"]
    assert (notice.type, notice.reason) == ("Normal", "SfuPodExited")
    assert "eu-sfu-a" in notice.message and "Completed, exit code 0" in notice.message


def test_a_pod_that_crashed_is_replaced_after_a_back_off_with_a_warning() -> None:
    crashed = plan([ended("eu-sfu-a", "Failed", "Error", 1)], 1, SfuPodMemory())
    assert crashed.delete == ["eu-sfu-a"]
    assert crashed.create == 0  # the replacement waits for the back-off
    assert crashed.retry_after is not None and 0 < crashed.retry_after <= 1
    [warning] = crashed.crashed
    assert (warning.type, warning.reason) == ("Warning", "SfuPodFailed")
    assert "eu-sfu-a" in warning.message and "exit code 1" in warning.message

    # Once the back-off has passed, the replacement is created.
    later = plan([], 1, crashed.memory, NOW + crashed.retry_after)
    assert later.create == 1 and later.crashed == []


def running(name: str, started: str, ready: str | None = None, since: str | None = None):
    """The pod with its SFU container running since `started`; Ready True/False since."""
    conditions = (
        []
        if ready is None
        else [{"type": "Ready", "status": ready, "lastTransitionTime": since or started}]
    )
    return pod(
        name,
        phase="Running",
        conditions=conditions,
        containerStatuses=[{"name": "sfu", "state": {"running": {"startedAt": started}}}],
    )


def test_a_pod_never_ready_past_the_grace_is_replaced_after_the_back_off() -> None:
    started = "2026-01-01T00:00:00Z"  # Unix 1767225600
    start = 1_767_225_600.0
    fine = running("eu-sfu-a", started, "True")
    stuck = running("eu-sfu-b", started, "False")
    within = plan([fine, stuck], 2, SfuPodMemory(), start + 30)
    assert (within.create, within.delete) == (0, [])
    assert within.retry_after is not None, "a pass is due when its grace ends"

    past = plan([fine, stuck], 2, SfuPodMemory(), start + 120)
    assert past.delete == ["eu-sfu-b"]
    assert [n.reason for n in past.crashed] == ["SfuPodNeverReady"]
    assert past.create == 0 and past.retry_after == 1.0

    # Its Ready condition written as it started, a moment late: still never Ready.
    late = running("eu-sfu-b", started, "False", since="2026-01-01T00:00:02Z")
    assert plan([fine, late], 2, SfuPodMemory(), start + 120).delete == ["eu-sfu-b"]

    # Ready once, then not (e.g. fenced): no failed start, it stays.
    lapsed = running("eu-sfu-b", started, "False", since="2026-01-01T00:01:50Z")
    assert plan([fine, lapsed], 2, SfuPodMemory(), start + 120).delete == []
