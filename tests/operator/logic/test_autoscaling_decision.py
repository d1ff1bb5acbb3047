"""The autoscaler's decision: the fewest pods that keep demand at the target, plus the
buffer, within the bounds; up at once, down only after a whole window of low demand, never
on missing reports; and (with the pod plan) never a pod that holds a room."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard_operator.logic.autoscaling import (
    Direction,
    ScalingMemory,
    ScalingSpec,
    buffer_pods,
    decide,
    hold_started,
    pods_needed,
    recommend,
    scale_down_held_message,
    shown_differently,
)
from switchboard_operator.logic.sfu_pod_plan import SfuPodView, plan_sfu_pods

SPEC = ScalingSpec(
    min_replicas=1,
    max_replicas=4,
    capacity_per_pod=100.0,
    target_utilization=0.6,
    stabilization_seconds=300.0,
)

specs = st.builds(
    lambda lo, extra, target, window, buffer, enabled: ScalingSpec(
        min_replicas=lo,
        max_replicas=lo + extra,
        capacity_per_pod=100.0,
        target_utilization=target,
        stabilization_seconds=window,
        buffer=buffer,
        enabled=enabled,
    ),
    st.integers(0, 5),
    st.integers(0, 8),
    st.sampled_from([0.3, 0.6, 0.8, 1.0]),
    st.sampled_from([0.0, 30.0, 300.0]),
    st.one_of(st.none(), st.integers(0, 3), st.sampled_from(["0%", "25%", "100%"])),
    st.booleans(),
)
demands = st.floats(0, 2000, allow_nan=False)


SILENT = ("media/sfu-b",)


def run(spec, trace, *, fresh=True, current=1):
    """Decide along a trace of (seconds since the last decision, demand)."""
    memory, now, out = ScalingMemory(), 0.0, []
    for gap, demand in trace:
        now += gap
        unreported = () if fresh else SILENT
        decision = decide(demand, spec, memory, now, current=current, unreported=unreported)
        memory = decision.memory
        out.append((now, decision))
    return out


def test_the_fewest_pods_that_keep_demand_at_the_target():
    assert pods_needed(0.0, SPEC) == 0
    assert pods_needed(60.0, SPEC) == 1  # exactly at the target: no further pod
    assert pods_needed(60.1, SPEC) == 2
    assert recommend(0.0, SPEC) == 1  # minReplicas
    assert recommend(150.0, SPEC) == 3
    assert recommend(10_000.0, SPEC) == 4  # maxReplicas


def test_buffer_is_pods_or_a_percentage_of_what_demand_needs():
    assert buffer_pods(None, 3) == 0
    assert buffer_pods(2, 3) == 2
    assert buffer_pods("25%", 3) == 1  # rounded up
    assert buffer_pods("100%", 3) == 3
    assert recommend(0.0, replace(SPEC, buffer=1)) == 2  # minReplicas + buffer
    assert recommend(150.0, replace(SPEC, buffer="50%")) == 4  # 3 + 2, capped at max


def test_scales_up_at_once_and_down_only_after_a_whole_window():
    out = run(SPEC, [(0, 10.0), (1, 150.0), (1, 10.0), (298, 10.0), (2, 10.0)])
    desired = [d.desired for _, d in out]
    assert desired == [1, 3, 3, 3, 1]
    assert out[1][1].direction == Direction.UP
    assert out[-1][1].direction == Direction.DOWN
    # While holding, it says when to look again: when the high point leaves the window.
    assert out[2][1].recheck_at == 301.0


def test_missing_reports_block_scale_down_but_never_add_pods():
    out = run(SPEC, [(0, 150.0), (400, 10.0), (400, 10.0)], fresh=False)
    assert [d.desired for _, d in out] == [3, 3, 3]
    assert out[-1][1].held_by_reports
    assert out[-1][1].unreported == SILENT


def test_a_hold_by_reports_is_shown_once_and_cleared_when_they_come_back():
    """The hold is told (Event) when it starts, not on every decision; the Region's status
    changes only when the hold starts or ends, so an idle held Region costs no write."""
    first = decide(150.0, SPEC, ScalingMemory(), 0.0, current=1)
    held = decide(10.0, SPEC, first.memory, 400.0, current=3, unreported=SILENT)
    still = decide(10.0, SPEC, held.memory, 401.0, current=3, unreported=SILENT)
    back = decide(10.0, SPEC, still.memory, 402.0, current=3)
    assert (held.held_by_reports, still.held_by_reports, back.held_by_reports) == (
        True,
        True,
        False,
    )
    assert [hold_started(a, b) for a, b in ((first, held), (held, still), (still, back))] == [
        True,
        False,
        False,
    ]
    assert [shown_differently(a, b) for a, b in ((first, held), (held, still), (still, back))] == [
        True,
        False,
        True,
    ]
    assert back.desired == 1 and back.direction == Direction.DOWN
    assert "media/sfu-b" in scale_down_held_message(held)


def test_stale_reports_without_a_due_scale_down_hold_nothing():
    """Only a scale-down that is due is held: stale reports while demand needs the pods
    (or inside the window) show nothing."""
    first = decide(150.0, SPEC, ScalingMemory(), 0.0, current=1)
    busy = decide(150.0, SPEC, first.memory, 400.0, current=3, unreported=SILENT)
    early = decide(10.0, SPEC, busy.memory, 401.0, current=3, unreported=SILENT)
    assert not busy.held_by_reports and not early.held_by_reports
    assert busy.unreported == early.unreported == ()
    assert not hold_started(first, busy)


def test_after_a_restart_the_pods_serving_count_for_a_whole_window():
    out = run(SPEC, [(0, 0.0), (299, 0.0), (2, 0.0)], current=3)
    assert [d.desired for _, d in out] == [3, 3, 1]
    assert out[0][1].direction is None  # nothing decided before: no Event for a restart


def test_at_max_when_demand_needs_more_than_max_replicas():
    out = run(SPEC, [(0, 200.0), (1, 10_000.0), (1, 10.0)])
    assert [d.at_max for _, d in out] == [False, True, False]
    assert out[1][1].desired == 4


def test_disabled_keeps_min_replicas_under_any_load():
    spec = replace(SPEC, enabled=False, min_replicas=2)
    out = run(spec, [(0, 0.0), (1, 10_000.0), (400, 0.0)], current=4)
    assert {d.desired for _, d in out} == {2}
    assert not any(d.at_max for _, d in out)


def test_a_lowered_max_replicas_applies_at_once():
    ((_, first),) = run(SPEC, [(0, 200.0)])
    lowered = replace(SPEC, max_replicas=2)
    second = decide(200.0, lowered, first.memory, 1.0, current=4)
    assert (first.desired, second.desired) == (4, 2)


traces = st.lists(st.tuples(st.floats(0, 200, allow_nan=False), demands), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(specs, traces, st.booleans(), st.integers(0, 12))
def test_never_below_min_or_above_max(spec, trace, fresh, current):
    for _, decision in run(spec, trace, fresh=fresh, current=current):
        assert spec.min_replicas <= decision.desired <= spec.max_replicas


@settings(max_examples=300, deadline=None)
@given(specs, demands, demands)
def test_monotone_in_demand(spec, a, b):
    low, high = sorted((a, b))
    assert recommend(low, spec) <= recommend(high, spec)
    assert pods_needed(low, spec) <= pods_needed(high, spec)


@settings(max_examples=300, deadline=None)
@given(specs, traces)
def test_no_flapping_inside_the_stabilisation_window(spec, trace):
    """A scale-down happens only when no recommendation of the window before it asked for
    more, so no scale-down follows a scale-up (or a high point) within the window."""
    out = run(spec, trace)
    for index, (now, decision) in enumerate(out):
        if decision.direction != Direction.DOWN:
            continue
        for then, earlier in out[:index]:
            if now - then < spec.stabilization_seconds:
                assert recommend_at(earlier) <= decision.desired


def recommend_at(decision):
    # What demand asked for at that decision: the newest peak it recorded.
    return decision.memory.peaks[-1][1]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.booleans(), st.booleans(), st.integers(0, 3), st.booleans()),
        min_size=0,
        max_size=8,
    ),
    st.integers(0, 8),
    st.booleans(),
)
def test_the_pod_plan_never_removes_a_pod_that_holds_a_room(pods, desired, rooms_known):
    views = [
        SfuPodView(
            name=f"p{i}",
            template_hash="new",
            ready=ready,
            cordoned=cordoned,
            draining=draining,
            hosts_rooms=rooms > 0,
            rooms=rooms,
            created=f"2026-01-01T00:00:0{i}Z",
            deleting=deleting,
        )
        for i, (ready, cordoned, draining, rooms, deleting) in enumerate(pods)
    ]
    actions = plan_sfu_pods(views, desired, "new", rooms_known=rooms_known)
    holding = {v.name for v in views if v.hosts_rooms}
    assert not holding & set(actions.delete)
    assert not holding & set(actions.drain)  # scale-down never drains either
    serving = [v for v in views if not (v.deleting or v.cordoned or v.draining)]
    # Never fewer pods than desired once the plan is carried out, never more than needed.
    after = len(serving) - len(actions.cordon) - sum(1 for v in serving if v.name in actions.delete)
    assert after + len(actions.uncordon) + actions.create == max(desired, after)
