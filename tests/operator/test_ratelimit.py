"""Token buckets: a full burst at first, a steady refill, a cap at the burst, and a
Retry-After that is exactly the wait for the next token."""

from __future__ import annotations

import pytest

from switchboard_operator.logic.ratelimit import Admission, Rate, RateLimiter, TokenBucket

TWO_PER_SECOND = Rate(per_second=2.0, burst=3)


def _take_all(bucket: TokenBucket, now: float) -> int:
    taken = 0
    while bucket.take(now).allowed:
        taken += 1
        assert taken <= 1000, "bucket never ran dry"
    return taken


def test_a_new_bucket_allows_its_burst_then_refuses():
    bucket = TokenBucket(TWO_PER_SECOND, now=0.0)

    assert [bucket.take(0.0).allowed for _ in range(4)] == [True, True, True, False]


def test_retry_after_is_the_wait_for_the_next_token():
    bucket = TokenBucket(TWO_PER_SECOND, now=0.0)
    _take_all(bucket, 0.0)

    assert bucket.take(0.0) == Admission(allowed=False, retry_after=pytest.approx(0.5))
    assert bucket.take(0.2).retry_after == pytest.approx(0.3)
    assert bucket.take(0.5).allowed


def test_tokens_refill_at_the_rate():
    bucket = TokenBucket(TWO_PER_SECOND, now=0.0)
    _take_all(bucket, 0.0)

    assert _take_all(bucket, 1.0) == 2


def test_an_idle_bucket_refills_only_to_its_burst():
    bucket = TokenBucket(TWO_PER_SECOND, now=0.0)
    _take_all(bucket, 0.0)

    assert _take_all(bucket, 3600.0) == 3


def test_a_clock_stepping_back_adds_no_tokens():
    bucket = TokenBucket(TWO_PER_SECOND, now=10.0)
    _take_all(bucket, 10.0)

    assert not bucket.take(5.0).allowed
    assert bucket.take(10.5).allowed


def test_each_key_has_its_own_bucket():
    limiter = RateLimiter()
    slow = Rate(per_second=1.0, burst=1)

    assert limiter.admit("a", slow, now=0.0).allowed
    assert not limiter.admit("a", slow, now=0.0).allowed
    assert limiter.admit("b", slow, now=0.0).allowed


def test_a_lowered_rate_applies_without_a_fresh_burst():
    limiter = RateLimiter()
    generous = Rate(per_second=100.0, burst=100)
    strict = Rate(per_second=1.0, burst=2)
    limiter.admit("a", generous, now=0.0)

    outcomes = [limiter.admit("a", strict, now=0.0).allowed for _ in range(3)]

    assert outcomes == [True, True, False]
    assert limiter.admit("a", strict, now=0.0).retry_after == pytest.approx(1.0)


def test_retain_forgets_removed_keys():
    limiter = RateLimiter()
    one = Rate(per_second=1.0, burst=1)
    limiter.admit("gone", one, now=0.0)
    limiter.admit("kept", one, now=0.0)

    limiter.retain({"kept"})

    assert limiter.admit("gone", one, now=0.0).allowed
    assert not limiter.admit("kept", one, now=0.0).allowed


@pytest.mark.parametrize(
    ("per_second", "burst"), [(0.0, 1), (-1.0, 1), (float("inf"), 1), (float("nan"), 1), (1.0, 0)]
)
def test_a_rate_must_be_positive_and_finite_with_a_burst(per_second, burst):
    with pytest.raises(ValueError):
        Rate(per_second=per_second, burst=burst)
