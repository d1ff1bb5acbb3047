"""The control plane's lease rules (docs/contract.md, "Leases", C1, C3, C5, C6): silence
moves a pod's rooms only when that pod has certainly fenced, and a leader stops acting
before anyone else could take over."""

from __future__ import annotations

import pytest

from switchboard_api import defaults
from switchboard_operator.logic.leader_election import (
    ActingWindow,
    LeaderTiming,
    LoopHeartbeat,
    RecordObserver,
    next_term,
    released_transitions,
)
from switchboard_operator.logic.leases import AckLedger, LeaseTiming, silent_and_fenced

TERM = 4
TIMING = LeaseTiming(
    lease_seconds=8,
    failover_timeout_seconds=10,
    newer_term_grace_seconds=3,
    silence_margin_seconds=3,
)


def reporting(until: float, start: float = 0.0, capable: bool = True) -> AckLedger:
    """A pod that reported every second from `start` to `until`, each acknowledged and the
    acknowledgement confirmed by the next report."""
    ledger = AckLedger(lease_capable=capable)
    for second in range(int(start), int(until) + 1):
        ledger.on_report(second - 1 if second > start else None, TERM, TERM, float(second))
        ledger.acknowledged(second, float(second))
    return ledger


def lost(ledgers: dict[str, AckLedger], now: float, term_start: float = -100.0) -> list[str]:
    return [s.pod for s in silent_and_fenced(ledgers, term_start, now, TIMING)]


def test_one_silent_pod_moves_once_its_lease_and_the_margin_have_passed() -> None:
    # sfu-a last heard at 10: lease ends at 18; the others confirm an acknowledgement sent
    # at 19 when they report at 20; the margin runs out at 23.
    pods = {"sfu-a": reporting(10), "sfu-b": reporting(40), "sfu-c": reporting(40)}
    assert lost(pods, 17.9) == []
    assert lost(pods, 22.9) == []
    assert lost(pods, 23.0) == ["sfu-a"]


def test_two_silent_pods_move_nothing() -> None:
    pods = {"sfu-a": reporting(10), "sfu-b": reporting(10), "sfu-c": reporting(60)}
    assert lost(pods, 60) == []


def test_a_control_plane_that_hears_nobody_moves_nothing() -> None:
    pods = {"sfu-a": reporting(10), "sfu-b": reporting(10), "sfu-c": reporting(10)}
    assert lost(pods, 300) == []


def test_a_new_leader_that_has_heard_from_nobody_moves_nothing() -> None:
    pods = {name: AckLedger(lease_capable=True) for name in ("sfu-a", "sfu-b")}
    assert lost(pods, 1000, term_start=0) == []


def test_a_pod_alone_in_its_region_never_moves_on_silence() -> None:
    assert lost({"sfu-a": reporting(10)}, 1000) == []


def test_answers_that_never_arrive_make_no_witness() -> None:
    # sfu-b's reports arrive but it never confirms an acknowledgement (its answers are lost).
    deaf = AckLedger(lease_capable=True)
    for second in range(50):
        deaf.acknowledged(second, float(second))
    pods = {"sfu-a": reporting(10), "sfu-b": deaf, "sfu-c": reporting(60)}
    assert lost(pods, 60) == []


def test_a_pod_this_term_never_acknowledged_waits_for_the_newer_term_grace() -> None:
    # The new term started at 0; sfu-a never reported to it; its lease ends at 8 at the
    # latest, and acknowledgements of this newer term count only after 8 + 3: sfu-b's of
    # 12, confirmed at 13, plus the margin.
    pods = {"sfu-a": AckLedger(lease_capable=True), "sfu-b": reporting(40)}
    assert lost(pods, 15.9, term_start=0) == []
    assert lost(pods, 16.0, term_start=0) == ["sfu-a"]


def test_pods_without_leases_move_after_the_failover_timeout_and_margin() -> None:
    pods = {"old-a": reporting(10, capable=False), "old-b": reporting(10, capable=False)}
    assert lost(pods, 23.0) == []
    assert lost(pods, 23.1) == ["old-a", "old-b"]


def test_the_margin_covers_how_late_a_pod_without_leases_fences() -> None:
    """An SFU of the previous version applies an acknowledgement up to one report interval
    after its report arrived and checks its timer up to two intervals apart: it has fenced
    by `heard + failoverTimeoutSeconds + 3 * interval` (docs/contract.md, C6), which must
    not be later than the control plane moves its rooms."""
    timing = LeaseTiming()
    latest_fence = timing.failover_timeout_seconds + 3 * defaults.REPORT_INTERVAL_SECONDS
    assert latest_fence <= timing.failover_timeout_seconds + timing.silence_margin_seconds
    pods = {"old-a": reporting(10, capable=False)}
    assert silent_and_fenced(pods, -100.0, 10 + latest_fence, timing) == []


def test_pods_without_leases_are_no_witnesses() -> None:
    pods = {"sfu-a": reporting(10), "old-b": reporting(60, capable=False)}
    assert lost(pods, 60) == []


def test_confirmations_of_another_term_count_for_nothing() -> None:
    ledger = AckLedger(lease_capable=True)
    ledger.acknowledged(5, 5.0)
    ledger.on_report(5, TERM - 1, TERM, 6.0)
    assert not ledger.witnesses_after(0.0, 10.0)
    ledger.on_report(5, TERM, TERM, 6.0)
    assert ledger.witnesses_after(0.0, 10.0)


def test_a_leader_acts_only_within_the_renew_deadline_of_its_last_renewal() -> None:
    window = ActingWindow(renew_deadline_seconds=3.0)
    assert not window.acting(0.0)
    window.renewed(10.0)
    assert window.acting(12.9)
    assert not window.acting(13.0)
    # A renewal that started earlier but finished later never extends the window back.
    window.renewed(9.0)
    assert window.remaining(12.0) == pytest.approx(1.0)


def test_a_candidate_waits_a_whole_lease_after_the_record_last_changed() -> None:
    observer = RecordObserver()
    observer.observe(("leader-1", "renew-7"), 100.0)
    observer.observe(("leader-1", "renew-7"), 103.0)
    assert not observer.expired(103.9, 4.0)
    assert observer.expired(104.0, 4.0)
    observer.observe(("leader-1", "renew-8"), 104.5)
    assert not observer.expired(108.0, 4.0)


def test_the_leader_stops_before_anyone_can_take_over() -> None:
    timing = LeaderTiming()
    assert timing.renew_deadline_seconds < timing.lease_duration_seconds
    with pytest.raises(ValueError, match="shorter"):
        LeaderTiming(lease_duration_seconds=3, renew_deadline_seconds=3)
    with pytest.raises(ValueError, match="time out"):
        LeaderTiming(call_timeout_seconds=5)


def renewing_for(beats: list[float], until: float, timing: LeaderTiming) -> list[float]:
    """The election thread's renewals, one per retry from 0 to `until`, each made only while
    the loop, beating at `beats`, ran within the stall bound."""
    heartbeat = LoopHeartbeat()
    renewals = []
    for tick in range(int(until / timing.retry_seconds) + 1):
        now = tick * timing.retry_seconds
        for beat in [b for b in beats if b <= now]:
            heartbeat.beat(beat)
        if heartbeat.fresh(now, timing.loop_stall_seconds):
            renewals.append(now)
    return renewals


def test_a_slow_event_loop_keeps_its_lease() -> None:
    """The loop runs only every 3 s (a placement batch on a loaded machine), longer than
    the renew deadline: renewals go on every retry, so the leader acts throughout."""
    timing = LeaderTiming()
    renewals = renewing_for([3.0 * n for n in range(11)], 30.0, timing)
    assert renewals == [float(second) for second in range(31)]
    window = ActingWindow(timing.renew_deadline_seconds)
    for started in renewals:
        window.renewed(started)
    assert window.acting(30.0 + timing.renew_deadline_seconds - 0.1)


def test_a_wedged_event_loop_lets_its_lease_go_before_a_standby_takes_it() -> None:
    """The loop last ran at 10 s: renewals stop once the stall bound has passed, the leader
    stops acting a renew deadline after the last one, and a standby, which saw that renewal
    as the record's last change, takes over only after that."""
    timing = LeaderTiming()
    renewals = renewing_for([0.0, 5.0, 10.0], 60.0, timing)
    assert renewals[-1] == 10.0 + timing.loop_stall_seconds
    window = ActingWindow(timing.renew_deadline_seconds)
    for started in renewals:
        window.renewed(started)
    stops = renewals[-1] + timing.renew_deadline_seconds
    assert window.acting(stops - 0.1) and not window.acting(stops)
    standby = RecordObserver()
    seen = renewals[-1] + 0.5
    standby.observe(("wedged", renewals[-1]), seen)
    duration = timing.lease_duration_seconds
    assert not standby.expired(stops, duration)
    assert standby.expired(seen + duration, duration)


def test_a_loop_that_never_ran_takes_no_lease() -> None:
    assert not LoopHeartbeat().fresh(0.0, 4.0)
    with pytest.raises(ValueError, match="stall"):
        LeaderTiming(loop_stall_seconds=0)


def test_terms_increase_past_the_lease_and_past_any_reported_term() -> None:
    assert next_term(None) == 1
    assert next_term(6) == 7
    assert next_term(0, highest_reported=9) == 10


def test_a_lease_released_after_the_sfus_showed_a_newer_term_hands_on_past_it() -> None:
    """The Lease was deleted while no leader ran, and recreated at term 1 under SFUs that
    had applied term 7: the leader they refuse releases it at 7, so the next one leads 8."""
    assert released_transitions(1, highest_reported=7) == 7
    assert next_term(released_transitions(1, highest_reported=7)) == 8
    # An ordinary release changes no count (nobody reported more than the Lease says).
    assert released_transitions(5, highest_reported=5) == 5
    assert released_transitions(5, highest_reported=None) == 5


def test_a_missing_lease_is_created_at_once_only_by_a_replica_that_never_saw_a_holder() -> None:
    starting = RecordObserver()
    assert starting.may_create(100.0, 4.0)

    standby = RecordObserver()
    standby.observe(("leader-1", "renew-7"), 100.0)
    # Deleted under a leader that may still act: the absence is waited out whole...
    assert not standby.may_create(101.0, 4.0)
    # ...the leader recreating it within one retry starts the wait again...
    standby.observe(("leader-1", "renew-9"), 102.0)
    assert not standby.may_create(102.5, 4.0)
    assert not standby.may_create(106.4, 4.0)
    # ...and only an absence that lasted a whole lease duration frees it.
    assert standby.may_create(106.5, 4.0)
