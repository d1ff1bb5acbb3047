"""The operator's one back-off: it starts small, doubles with each consecutive failure, and
stops at its cap however many failures there were."""

from switchboard_operator.logic.backoff import Backoff


def test_the_delay_doubles_per_failure_up_to_the_cap():
    backoff = Backoff(first_seconds=0.5, max_seconds=30.0)
    assert [backoff.delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_no_failure_counts_as_the_first_and_a_huge_count_stays_at_the_cap():
    backoff = Backoff(first_seconds=1.0, max_seconds=60.0)
    assert backoff.delay(0) == 1.0
    assert backoff.delay(10_000) == 60.0
