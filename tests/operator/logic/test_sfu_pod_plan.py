"""SFU pods are scaled and rolled without ever removing a pod that hosts rooms undrained."""

from switchboard_api.region import PlacementPolicy
from switchboard_operator.logic.sfu_pod_plan import (
    CrashBackoff,
    PodActions,
    SfuPodView,
    plan_sfu_pods,
)


def pod(name, hash_="new", **kw):
    return SfuPodView(name=name, template_hash=hash_, **{"ready": True, **kw})


def test_creates_up_to_desired_and_nothing_when_converged():
    assert plan_sfu_pods([], 3, "new") == PodActions(create=3)
    assert plan_sfu_pods([pod("a"), pod("b"), pod("c")], 3, "new").empty


def test_scale_down_cordons_the_emptiest_then_newest_and_never_drains():
    pods = [
        pod("busy", hosts_rooms=True, rooms=2, created="2026-01-01T00:00:03Z"),
        pod("old-empty", created="2026-01-01T00:00:01Z"),
        pod("new-empty", created="2026-01-01T00:00:02Z"),
    ]
    assert plan_sfu_pods(pods, 2, "new") == PodActions(cordon=["new-empty"])
    assert plan_sfu_pods(pods, 1, "new") == PodActions(cordon=["new-empty", "old-empty"])
    assert plan_sfu_pods(pods, 0, "new") == PodActions(cordon=["busy", "new-empty", "old-empty"])


def test_a_cordoned_pod_is_deleted_once_empty_and_not_replaced():
    pods = [pod("a"), pod("b", cordoned=True, hosts_rooms=True, rooms=1)]
    assert plan_sfu_pods(pods, 1, "new").empty
    pods = [pod("a"), pod("b", cordoned=True)]
    assert plan_sfu_pods(pods, 1, "new") == PodActions(delete=["b"])
    # Until placements are restored after a restart, no cordoned pod counts as empty.
    assert plan_sfu_pods(pods, 1, "new", rooms_known=False).empty


def test_a_cordoned_pod_needed_again_is_uncordoned_not_replaced():
    pods = [
        pod("a"),
        pod("b", cordoned=True, hosts_rooms=True, rooms=1),
        pod("c", cordoned=True, hosts_rooms=True, rooms=3),
    ]
    assert plan_sfu_pods(pods, 2, "new") == PodActions(uncordon=["c"], delete=[])
    assert plan_sfu_pods(pods, 4, "new") == PodActions(create=1, uncordon=["b", "c"])


def test_packed_keeps_the_fullest_pods_warm():
    pods = [
        pod("full", hosts_rooms=True, rooms=3, used=60.0, created="2026-01-01T00:00:01Z"),
        pod("light", hosts_rooms=True, rooms=1, used=5.0, created="2026-01-01T00:00:01Z"),
        pod("newest", hosts_rooms=True, rooms=2, used=30.0, created="2026-01-01T00:00:09Z"),
    ]
    assert plan_sfu_pods(pods, 2, "new", policy=PlacementPolicy.PACKED).cordon == ["light"]
    assert plan_sfu_pods(pods, 2, "new").cordon == ["newest"]


def test_not_ready_pods_go_first_and_at_once():
    pods = [pod("ready"), pod("stuck", ready=False)]
    assert plan_sfu_pods(pods, 1, "new") == PodActions(delete=["stuck"])


def test_a_drained_pod_is_deleted_once_its_rooms_are_gone():
    assert plan_sfu_pods([pod("a", draining=True)], 0, "new") == PodActions(delete=["a"])
    assert plan_sfu_pods([pod("a", draining=True, hosts_rooms=True)], 0, "new").empty


def test_image_roll_surges_one_then_retires_one_at_a_time():
    old = [pod("o1", "old"), pod("o2", "old", hosts_rooms=True)]
    # Surge one new pod first, keep both old pods while it is not ready.
    assert plan_sfu_pods(old, 2, "new") == PodActions(create=1)
    starting = [*old, pod("n1", ready=False)]
    assert plan_sfu_pods(starting, 2, "new") == PodActions()
    # Once it is ready, retire the empty old pod (the busy one stays).
    ready = [*old, pod("n1")]
    assert plan_sfu_pods(ready, 2, "new") == PodActions(delete=["o1"])
    # The busy old pod is drained, not deleted; no second pod is touched meanwhile.
    later = [pod("o2", "old", hosts_rooms=True), pod("n1"), pod("n2")]
    assert plan_sfu_pods(later, 2, "new") == PodActions(drain=["o2"])
    draining = [pod("o2", "old", hosts_rooms=True, draining=True), pod("n1"), pod("n2")]
    assert plan_sfu_pods(draining, 2, "new").empty


def test_pods_being_deleted_are_replaced():
    assert plan_sfu_pods([pod("a", deleting=True), pod("b")], 2, "new") == PodActions(create=1)


def test_a_crashed_pod_is_deleted_and_replaced_and_counts_as_a_crash():
    dead = pod("dead", terminated=True, failed=True, ready=False)
    actions = plan_sfu_pods([dead, pod("b")], 2, "new")
    assert actions == PodActions(create=1, delete=["dead"], crashed=["dead"])


def test_a_pod_that_exited_cleanly_is_replaced_but_is_no_crash():
    # A drained pod exits 0 once empty (phase Succeeded): routine, not a crash loop.
    done = pod("done", terminated=True, failed=False, ready=False, draining=True)
    actions = plan_sfu_pods([done, pod("b")], 2, "new")
    assert actions == PodActions(create=1, delete=["done"], exited=["done"])
    assert actions.crashed == []


def test_a_terminated_pod_already_being_deleted_is_not_counted_again():
    gone = pod("gone", terminated=True, failed=True, deleting=True, ready=False)
    assert plan_sfu_pods([gone, pod("b")], 2, "new") == PodActions(create=1)


def test_crashing_pods_are_replaced_with_growing_delays_that_reset():
    backoff = CrashBackoff()
    delays = []
    for second in range(0, 80, 10):
        backoff = backoff.failed(float(second))
        delays.append(backoff.waiting(float(second)))
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    # A failure long after the last one starts counting again.
    assert backoff.failed(10_000.0).waiting(10_000.0) == 1
