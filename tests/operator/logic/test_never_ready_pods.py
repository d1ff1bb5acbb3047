"""An SFU pod that never becomes Ready is pending capacity only for as long as a healthy
SFU takes to start; after that it is not capacity: it is deleted (it holds no room) and
replaced, no faster than the crash back-off allows."""

from hypothesis import given
from hypothesis import strategies as st

from switchboard_operator.logic.manifests.sfu import NOT_READY_GRACE_SECONDS
from switchboard_operator.logic.sfu_pod_plan import (
    SfuPodMemory,
    SfuPodView,
    plan_region_pods,
    plan_sfu_pods,
)

GRACE = NOT_READY_GRACE_SECONDS
NOW = 10_000.0


def starting(name: str, since: float, **kw) -> SfuPodView:
    return SfuPodView(name=name, template_hash="new", ready=False, never_ready_since=since, **kw)


def ready(name: str, **kw) -> SfuPodView:
    return SfuPodView(name=name, template_hash="new", ready=True, **kw)


def test_the_grace_is_the_probes_start_up_budget():
    # The startup probe may fail for 60 s, then one 2 s readiness period follows.
    assert GRACE == 62


def test_a_pod_within_its_start_up_grace_is_pending_capacity():
    pods = [ready("a"), starting("b", since=NOW - GRACE + 1)]
    assert plan_sfu_pods(pods, 2, "new", now=NOW).empty


def test_a_pod_never_ready_past_the_grace_is_deleted_and_replaced():
    pods = [ready("a"), starting("b", since=NOW - GRACE - 1)]
    actions = plan_sfu_pods(pods, 2, "new", now=NOW)
    assert (actions.create, actions.delete, actions.stalled) == (1, ["b"], ["b"])


def test_a_pod_not_ready_but_holding_rooms_is_kept():
    pods = [ready("a"), starting("b", since=NOW - 10 * GRACE, hosts_rooms=True, rooms=2)]
    assert plan_sfu_pods(pods, 2, "new", now=NOW).empty


def test_a_pod_whose_container_has_not_started_is_still_starting():
    # No start time (pulling its image, waiting for a node): not judged by the grace.
    pods = [ready("a"), SfuPodView(name="b", template_hash="new", created="2020-01-01T00:00:00Z")]
    assert plan_sfu_pods(pods, 2, "new", now=NOW).empty


def test_stalled_pods_are_replaced_no_faster_than_the_crash_back_off():
    memory = SfuPodMemory()
    now = NOW
    delays = []
    for attempt in range(4):
        pods = [ready("a"), starting(f"s{attempt}", since=now - GRACE - 1)]
        plan = plan_region_pods(pods, 2, "new", memory, now)
        assert plan.delete == [f"s{attempt}"]
        assert [n.reason for n in plan.crashed] == ["SfuPodNeverReady"]
        assert plan.create == 0, "the replacement waits for the back-off"
        assert plan.retry_after is not None
        delays.append(plan.retry_after)
        memory = plan.memory
        # The stalled pod is gone; once the back-off has passed, one replacement comes.
        now += plan.retry_after
        after = plan_region_pods([ready("a")], 2, "new", memory, now)
        assert after.create == 1
        memory = after.memory
        now += GRACE + 1
    assert delays == [1, 2, 4, 8]


def test_a_pass_is_due_when_a_starting_pod_passes_its_grace():
    pods = [ready("a"), starting("b", since=NOW - GRACE + 10)]
    plan = plan_region_pods(pods, 2, "new", SfuPodMemory(), NOW)
    assert plan.create == 0 and plan.delete == []
    assert plan.retry_after is not None and 10 < plan.retry_after <= 11


pod_states = st.builds(
    lambda index, is_ready, rooms, age: SfuPodView(
        name=f"p{index}",
        template_hash="new",
        ready=is_ready,
        hosts_rooms=rooms > 0,
        rooms=rooms,
        never_ready_since=None if is_ready or age is None else NOW - age,
    ),
    st.integers(0, 1000),
    st.booleans(),
    st.integers(0, 3),
    st.none() | st.floats(0, 10 * GRACE),
)


@given(
    pods=st.lists(pod_states, max_size=8, unique_by=lambda p: p.name),
    desired=st.integers(0, 8),
)
def test_only_empty_pods_past_the_grace_stop_counting_as_capacity(pods, desired):
    actions = plan_sfu_pods(pods, desired, "new", now=NOW)
    by_name = {p.name: p for p in pods}
    for name in actions.stalled:
        pod = by_name[name]
        assert not pod.ready and not pod.hosts_rooms
        assert NOW - pod.never_ready_since > GRACE
        assert name in actions.delete
    # Never a pod that holds a room is deleted, and every other pod counts towards desired.
    assert not any(by_name[name].hosts_rooms for name in actions.delete)
    counted = len(pods) - len(actions.stalled)
    assert actions.create == max(0, desired - counted)
