"""A Room's lifecycle, decided purely: placed with one status write, waiting without an
Event, unschedulable with one Warning per reason, migrating when its pod was lost, restored
as its status recorded it, closed when empty past its timeout, and deleted after its TTL."""

from __future__ import annotations

from typing import Any

from fixtures.placement_builders import NOW, add_pod, key, observe, report, usage
from switchboard_api.region import Region
from switchboard_operator.logic.capacity import CapacityPicture, LossReason
from switchboard_operator.logic.room_lifecycle import (
    NOTHING_REMEMBERED,
    RoomDecision,
    RoomGone,
    RoomMemory,
    decide_room,
)
from switchboard_operator.logic.timestamps import format_time

ROOM = "team/standup"


def region(name: str = "eu", **sfu: Any) -> Region:
    return Region.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "namespace": "media",
                "location": {"latitude": 52.4, "longitude": 4.9},
                "sfu": {"capacityPerPod": 100, **sfu},
            },
        }
    )


def room(status: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """The Room as the watch delivers it."""
    return {
        "apiVersion": "switchboard.dev/v1alpha1",
        "kind": "Room",
        "metadata": {"namespace": "team", "name": "standup", "generation": 1},
        "spec": {"region": "eu", "maxParticipants": 4, **spec},
        "status": status,
    }


def decide(
    picture: CapacityPicture,
    status: dict[str, Any] | None = None,
    memory: RoomMemory = NOTHING_REMEMBERED,
    *,
    now: float = NOW,
    regions: tuple[Region, ...] = (region(),),
    **spec: Any,
) -> RoomDecision:
    return decide_room(
        room(status or {}, **spec),
        memory,
        picture=picture,
        regions={r.metadata.name or "": r for r in regions},
        namespace_labels={},
        pod_address=lambda _region, _pod: "10.0.0.7",
        now=now,
    )


def carry_out(picture: CapacityPicture, decision: RoomDecision, status: dict) -> dict:
    """What the Room reconciler does with a decision, minus the I/O: the picture changes,
    and the status as the watch then shows it."""
    if decision.release:
        picture.release(ROOM)
    if decision.assign is not None:
        a = decision.assign
        picture.assign(
            ROOM, a.reservation, pod=a.pod, pod_uid=a.pod_uid, now=NOW, placed_at=a.placed_at
        )
    merged = {**status, **decision.status}
    return {k: v for k, v in merged.items() if v is not None}


def test_a_room_is_placed_with_one_status_write_and_then_nothing_more():
    picture = CapacityPicture()
    add_pod(picture, "sfu-0")
    first = decide(picture)
    assert first.assign is not None and first.assign.pod == key("sfu-0")
    assert first.status["phase"] == "Scheduled" and first.status["pod"] == "sfu-0"
    assert first.answer == first.placed and first.placed.endpoint
    assert first.notice is None and first.memory == NOTHING_REMEMBERED
    status = carry_out(picture, first, {})

    again = decide(picture, status)  # the watch echo of its own write
    assert again.status == {} and again.assign is None


def test_a_room_that_fits_nowhere_is_unschedulable_with_one_warning_per_reason():
    picture = CapacityPicture()
    add_pod(picture, "sfu-0", capacity=1.0)
    first = decide(picture)
    assert first.status["phase"] == "Unschedulable"
    assert first.notice is not None and first.notice.type == "Warning"
    assert first.notice.reason == "RegionFull"
    assert first.memory.pending and first.memory.announced == "RegionFull"
    assert first.answer is not None  # join requests hear it at once

    again = decide(picture, carry_out(picture, first, {}), first.memory)
    assert again.notice is None and again.status == {}


def test_a_room_whose_region_is_starting_waits_without_an_event():
    picture = CapacityPicture()
    picture.apply_pod(observe("sfu-0"), NOW)  # seen by the Pod watch, not reporting yet
    decision = decide(picture)
    assert decision.status["phase"] == "Pending"
    assert decision.notice is None and decision.answer is None
    assert decision.memory.pending
    assert decision.requeue_after is not None and decision.requeue_after > 0


def test_a_room_that_lost_its_pod_is_migrating_and_never_waits():
    picture = CapacityPicture()
    add_pod(picture, "sfu-0")
    status = carry_out(picture, decide(picture), {})
    picture.displace(ROOM, LossReason.POD_DELETED)
    picture.remove_pod(key("sfu-0"))
    decision = decide(picture, status)
    assert decision.status["phase"] == "Migrating"
    assert decision.status["message"] == "Left SFU pod media/sfu-0 (PodDeleted)."
    assert decision.assign is None  # never restored onto the pod it left
    assert decision.memory.pending and decision.answer is None


def test_after_a_restart_the_placement_its_status_records_is_restored():
    before = CapacityPicture()
    add_pod(before, "sfu-0")
    status = carry_out(before, decide(before), {})

    restarted = CapacityPicture()
    decision = decide(restarted, status, now=NOW + 30)
    assert decision.assign is not None
    assert (decision.assign.pod, decision.assign.pod_uid) == (key("sfu-0"), "uid-sfu-0")
    assert decision.assign.placed_at == NOW  # its first placement, for the reservation hold
    assert decision.status == {}  # nothing to write: it stays where it was


def test_a_restored_room_keeps_its_live_status_until_its_pod_reports_it():
    """After a restart the picture knows no participants before the pod reports: a room in
    a call stays Running with its count, instead of flapping to Scheduled with 0 and back
    (a status write per room per takeover, for rooms that did not move)."""
    before = CapacityPicture()
    add_pod(before, "sfu-0")
    status = carry_out(before, decide(before), {})
    before.apply_report(report("sfu-0", sequence=1, rooms=(usage(ROOM, participants=2),)), NOW + 1)
    status = carry_out(before, decide(before, status, now=NOW + 1), status)
    assert (status["phase"], status["participants"]) == ("Running", 2)

    restarted = CapacityPicture()
    restored = decide(restarted, status, now=NOW + 30)
    assert restored.assign is not None
    assert restored.status == {}  # nothing to write
    carry_out(restarted, restored, status)
    restarted.apply_report(
        report("sfu-0", sequence=2, rooms=(usage(ROOM, participants=1),)), NOW + 31
    )
    reported = decide(restarted, status, now=NOW + 31)
    assert reported.status == {"participants": 1}  # only what the report changed


def test_an_empty_room_closes_after_its_timeout_and_is_deleted_after_its_ttl():
    picture = CapacityPicture()
    add_pod(picture, "sfu-0")
    spec = {"emptyTimeoutSeconds": 30, "ttlSecondsAfterClosed": 60}
    status = carry_out(picture, decide(picture, **spec), {})
    empty = usage(ROOM, empty_since=29.0)
    picture.apply_report(report("sfu-0", sequence=1, rooms=(empty,)), NOW + 29)
    assert decide(picture, status, now=NOW + 29, **spec).release is False

    picture.apply_report(
        report("sfu-0", sequence=2, rooms=(usage(ROOM, empty_since=30.0),)), NOW + 30
    )
    closing = decide(picture, status, now=NOW + 30, **spec)
    assert closing.release and closing.status["phase"] == "Closed"
    assert closing.notice is not None and closing.notice.reason == "Closed"
    assert closing.memory.closed_at == format_time(NOW + 30)
    assert closing.requeue_after == 60
    status = carry_out(picture, closing, status)
    assert picture.placement_of(ROOM) is None

    later = decide(picture, status, closing.memory, now=NOW + 90, **spec)
    assert later.delete


def test_a_room_moved_while_empty_closes_by_the_time_it_has_been_empty_overall():
    picture = CapacityPicture()
    add_pod(picture, "sfu-0")
    status = carry_out(picture, decide(picture, emptyTimeoutSeconds=30), {})
    picture.carry_emptiness(ROOM, NOW - 25)  # empty for 25 s before rebalance moved it
    picture.apply_report(
        report("sfu-0", sequence=1, rooms=(usage(ROOM, empty_since=6.0),)), NOW + 6
    )
    closing = decide(picture, status, now=NOW + 6, emptyTimeoutSeconds=30)
    assert closing.release and closing.status["phase"] == "Closed"


def test_a_deleted_room_leaves_the_picture_and_its_waiting_joins_hear_so():
    picture = CapacityPicture()
    add_pod(picture, "sfu-0")
    carry_out(picture, decide(picture), {})
    deleting = room({}, **{})
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    decision = decide_room(
        deleting,
        RoomMemory(pending=True),
        picture=picture,
        regions={"eu": region()},
        namespace_labels={},
        pod_address=lambda _region, _pod: None,
        now=NOW,
    )
    assert decision.release and decision.memory == NOTHING_REMEMBERED
    assert isinstance(decision.answer, RoomGone)
    assert decision.status == {}


def test_an_unreadable_room_is_left_alone():
    broken = room({}, maxParticipants="many")
    decision = decide_room(
        broken,
        NOTHING_REMEMBERED,
        picture=CapacityPicture(),
        regions={"eu": region()},
        namespace_labels={},
        pod_address=lambda _region, _pod: None,
        now=NOW,
    )
    assert decision.unreadable and decision.status == {} and decision.assign is None
