"""Which SFU pods a Region's status records as trusted: a pod is dropped only on positive
evidence that it is gone, never because an incomplete cache does not show it."""

from __future__ import annotations

from switchboard_operator.logic.sfu_trust import (
    RECORD_GRACE_SECONDS,
    SfuPodLedger,
    reserved_pods,
    unrecorded_pods,
)

NOW = 1_000_000.0
RECORDED = {"uid-a": "sfu-a", "uid-b": "sfu-b"}


def _names(records: list[dict[str, str]]) -> list[str]:
    return [r["name"] for r in records]


def test_a_recorded_pod_missing_from_the_cache_stays_trusted():
    # After a relist or a restart the cache may not show a live pod yet: untrusting it
    # would refuse its reports and move its rooms.
    ledger = SfuPodLedger()
    assert _names(ledger.records("eu", RECORDED, {"uid-a": "sfu-a"}, NOW)) == ["sfu-a", "sfu-b"]
    assert _names(ledger.records("eu", RECORDED, {}, NOW)) == ["sfu-a", "sfu-b"]


def test_a_pod_seen_deleted_is_dropped():
    ledger = SfuPodLedger()
    ledger.deleted("uid-b")
    assert _names(ledger.records("eu", RECORDED, {"uid-a": "sfu-a"}, NOW)) == ["sfu-a"]


def test_a_pod_whose_name_belongs_to_a_new_uid_is_dropped():
    ledger = SfuPodLedger()
    present = {"uid-a": "sfu-a", "uid-b2": "sfu-b"}
    assert ledger.records("eu", RECORDED, present, NOW) == [{"name": "sfu-a", "uid": "uid-a"}]


def test_a_pod_created_here_is_recorded_until_the_status_carries_it_or_it_is_gone():
    ledger = SfuPodLedger()
    ledger.created("eu", "sfu-c", "uid-c", NOW)
    assert "sfu-c" in _names(ledger.records("eu", RECORDED, {}, NOW + 1))
    later = NOW + RECORD_GRACE_SECONDS + 1
    assert "sfu-c" in _names(ledger.records("eu", RECORDED, {}, later))
    ledger.deleted("uid-c")
    assert "sfu-c" not in _names(ledger.records("eu", RECORDED, {}, later))
    assert list(ledger.created_uids("eu")) == []


def test_reserved_names_are_read_from_the_status():
    body = {"status": {"sfu": {"reservedPods": ["sfu-c", "sfu-d"]}}}
    assert reserved_pods(body) == ["sfu-c", "sfu-d"]
    assert reserved_pods({"status": {"sfu": {}}}) == []
    assert reserved_pods(None) == []


def test_a_pod_under_a_reserved_name_without_a_recorded_uid_is_deleted():
    # The operator stopped between the create and the write that records the UID.
    found = {"sfu-c": "uid-c"}
    assert unrecorded_pods(["sfu-c"], found, lambda uid: False) == [("sfu-c", "uid-c")]


def test_a_reserved_name_that_was_recorded_or_never_created_deletes_nothing():
    found = {"sfu-c": "uid-c", "sfu-d": None}
    trusted = {"uid-c"}.__contains__
    assert unrecorded_pods(["sfu-c", "sfu-d", "sfu-d"], found, trusted) == []


def test_only_reserved_names_are_settled():
    # A pod the cache shows under a name nobody reserved is an untrusted pod: left alone.
    found = {"sfu-c": "uid-c", "rogue": "uid-r"}
    assert unrecorded_pods(["sfu-c"], found, lambda uid: False) == [("sfu-c", "uid-c")]
