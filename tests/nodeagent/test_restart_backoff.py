"""Crash-loop back-off: initial delay, doubling, capped, and forgotten after a long run."""

from switchboard_localcluster.nodeagent.backoff import BackoffPolicy, RestartBackoff


def test_kubelet_defaults_double_from_10s_to_5min() -> None:
    backoff = RestartBackoff(BackoffPolicy())
    delays = [backoff.next_delay(ran_for_seconds=1) for _ in range(7)]
    assert delays == [10, 20, 40, 80, 160, 300, 300]


def test_configurable_base_for_fast_tests() -> None:
    backoff = RestartBackoff(BackoffPolicy(initial_seconds=0.5, max_seconds=2))
    assert [backoff.next_delay(0) for _ in range(4)] == [0.5, 1, 2, 2]


def test_a_long_healthy_run_resets_the_backoff() -> None:
    policy = BackoffPolicy(initial_seconds=1, max_seconds=8)
    backoff = RestartBackoff(policy)
    for _ in range(5):
        backoff.next_delay(0)
    assert backoff.next_delay(ran_for_seconds=policy.reset_after_seconds) == 1
    assert backoff.next_delay(0) == 2
