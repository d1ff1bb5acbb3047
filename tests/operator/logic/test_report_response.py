"""A report's answer carries the pod's complete assignments with each room's participant
limit, its drain orders, and closes only the strays that live nowhere else."""

from __future__ import annotations

from fixtures.placement_builders import NOW, add_pod, key, observe, report, usage
from switchboard_operator.logic.capacity import CapacityPicture
from switchboard_operator.logic.report_response import report_response


def test_the_answer_lists_every_assignment_and_closes_only_rooms_placed_nowhere():
    picture = CapacityPicture()
    add_pod(picture, "sfu-0")
    add_pod(picture, "sfu-1")
    for room, pod in (("a/one", "sfu-0"), ("a/two", "sfu-0"), ("a/moved", "sfu-1")):
        picture.assign(room, 5.0, pod=key(pod), pod_uid=f"uid-{pod}", now=NOW)
    sent = report(
        "sfu-0",
        sequence=3,
        rooms=(usage("a/one"), usage("a/moved"), usage("a/ended")),
    )
    outcome = picture.apply_report(sent, NOW + 1)
    limits = {"a/one": 4, "a/two": 10}
    answer = report_response(
        picture, sent, outcome, max_participants=limits.__getitem__, failover_timeout=10.0
    ).to_wire()
    assert answer == {
        "version": "switchboard.dev/v1",
        "acknowledged": True,
        "sequence": 3,
        "failoverTimeoutSeconds": 10.0,
        "assignments": [
            {"room": "a/one", "maxParticipants": 4, "closing": False},
            {"room": "a/two", "maxParticipants": 10, "closing": False},
        ],
        "drain": False,
        "close": ["a/ended"],
        "peers": [],
    }


def test_a_draining_pod_is_told_so_with_its_deadline():
    picture = CapacityPicture()
    picture.apply_pod(observe("sfu-0", draining=True, drain_deadline=NOW + 60), NOW)
    sent = report("sfu-0", sequence=1)
    outcome = picture.apply_report(sent, NOW)
    answer = report_response(
        picture, sent, outcome, max_participants=lambda _room: 2, failover_timeout=10.0
    ).to_wire()
    assert answer["drain"] is True
    assert answer["drainDeadline"] == "1970-01-12T13:47:40Z"


def test_a_pod_that_speaks_leases_is_granted_one_in_the_term_and_told_its_peers():
    picture = CapacityPicture()
    for pod in ("sfu-0", "sfu-1", "sfu-2"):
        add_pod(picture, pod)
    picture.apply_report(report("sfu-1", sequence=1, peer=True), NOW)  # sfu-2: an older SFU
    sent = report("sfu-0", sequence=1, peer=True)
    outcome = picture.apply_report(sent, NOW + 1)
    answer = report_response(
        picture,
        sent,
        outcome,
        max_participants=lambda _room: 2,
        failover_timeout=10.0,
        term=4,
        lease_seconds=8.0,
    )
    assert (answer.term, answer.lease_seconds) == (4, 8.0)
    assert [(p.pod, p.pod_uid, p.url) for p in answer.peers] == [
        ("sfu-1", "uid-sfu-1", "http://sfu-1:7881/v1/lease")
    ]


def test_a_pod_without_a_peer_endpoint_gets_the_term_but_no_lease():
    picture = CapacityPicture()
    add_pod(picture, "sfu-0")
    sent = report("sfu-0", sequence=1)
    outcome = picture.apply_report(sent, NOW + 1)
    answer = report_response(
        picture,
        sent,
        outcome,
        max_participants=lambda _room: 2,
        failover_timeout=10.0,
        term=4,
        lease_seconds=8.0,
    )
    assert (answer.term, answer.lease_seconds, answer.peers) == (4, None, [])


def test_the_answer_to_a_fenced_report_assigns_nothing():
    # Its rooms are moving: assigning them would lift its fence with rooms another pod gets.
    picture = CapacityPicture()
    add_pod(picture, "sfu-0")
    picture.assign("a/one", 5.0, pod=key("sfu-0"), pod_uid="uid-sfu-0", now=NOW)
    sent = report("sfu-0", sequence=1, fenced=True)
    outcome = picture.apply_report(sent, NOW + 1)
    answer = report_response(
        picture, sent, outcome, max_participants=lambda _room: 2, failover_timeout=10.0
    )
    assert answer.acknowledged and answer.assignments == []


def test_an_answer_built_on_the_previous_one_carries_each_rooms_current_limit():
    picture = CapacityPicture()
    add_pod(picture, "sfu-0")
    for room in ("a/one", "a/two"):
        picture.assign(room, 5.0, pod=key("sfu-0"), pod_uid="uid-sfu-0", now=NOW)
    limits = {"a/one": 4, "a/two": 10}

    def answer(sequence, previous=None):
        sent = report("sfu-0", sequence=sequence)
        outcome = picture.apply_report(sent, NOW + sequence)
        return report_response(
            picture,
            sent,
            outcome,
            max_participants=limits.__getitem__,
            failover_timeout=10.0,
            previous=previous,
        )

    first = answer(1)
    limits["a/two"] = 20  # its Room's maxParticipants was raised
    picture.assign("a/three", 5.0, pod=key("sfu-0"), pod_uid="uid-sfu-0", now=NOW)
    limits["a/three"] = 2
    second = answer(2, previous={a.room: a for a in first.assignments})
    assert second.to_wire()["assignments"] == [
        {"room": "a/one", "maxParticipants": 4, "closing": False},
        {"room": "a/three", "maxParticipants": 2, "closing": False},
        {"room": "a/two", "maxParticipants": 20, "closing": False},
    ]
