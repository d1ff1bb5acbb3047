"""The capacity model: what a room reserves, and what a placed room counts against its pod."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchboard_api.room import MediaProfile, RoomSpec
from switchboard_operator.logic.capacity import CapacityModel

MODEL = CapacityModel()
HOLD = MODEL.reservation_hold_seconds


def test_default_room_reserves_its_forwarded_streams_plus_participant_overhead():
    # 10 participants, 2 video publishers at 1 Mbit/s, 4 audio publishers: each stream
    # goes to the 9 others (18 video + 36 audio streams), plus 0.1 per participant.
    assert MODEL.reservation(RoomSpec()) == pytest.approx(18 * 1.0 + 36 * 0.1 + 10 * 0.1)


def test_video_is_weighted_by_its_bitrate():
    slow = RoomSpec(media_profile=MediaProfile(video_publishers=1, audio_publishers=0))
    fast = RoomSpec(
        media_profile=MediaProfile(video_publishers=1, audio_publishers=0, video_bitrate_kbps=2000)
    )
    overhead = 10 * MODEL.participant_overhead
    assert MODEL.reservation(fast) - overhead == pytest.approx(
        2 * (MODEL.reservation(slow) - overhead)
    )


def test_a_room_of_one_still_reserves_something():
    # Nothing is forwarded in a one-person room, but it is not free: without the
    # overhead a pod would admit any number of them.
    alone = RoomSpec(
        max_participants=1, media_profile=MediaProfile(video_publishers=1, audio_publishers=1)
    )
    assert MODEL.reservation(alone) == pytest.approx(MODEL.participant_overhead)


def test_measured_cost_applies_the_same_overhead_per_connected_participant():
    assert MODEL.measured_cost(load=5.0, participants=3) == pytest.approx(5.3)


def test_an_unmeasured_room_counts_its_reservation_however_old():
    assert MODEL.effective(20.0, None, age=0) == 20.0
    assert MODEL.effective(20.0, None, age=10 * HOLD) == 20.0


def test_a_young_room_counts_at_least_its_reservation():
    assert MODEL.effective(20.0, 2.0, age=HOLD / 2) == 20.0
    assert MODEL.effective(20.0, 30.0, age=HOLD / 2) == 30.0


def test_a_mature_room_counts_its_usage_plus_most_of_its_unused_reservation():
    assert MODEL.effective(20.0, 0.0, age=HOLD) == pytest.approx(20.0 * MODEL.retained_fraction)
    assert MODEL.effective(20.0, 10.0, age=HOLD) == pytest.approx(
        10.0 + 10.0 * MODEL.retained_fraction
    )


def test_a_room_using_more_than_it_reserved_counts_what_it_uses():
    assert MODEL.effective(20.0, 25.0, age=10 * HOLD) == 25.0


@given(
    st.lists(
        st.tuples(
            st.floats(0, 500),
            st.one_of(st.none(), st.floats(0, 500)),
            st.floats(0, 10 * HOLD),
        ),
        max_size=30,
    )
)
def test_rooms_growing_to_their_reservations_never_exceed_counted_load_over_retained_fraction(
    rooms,
):
    # The guarantee behind RETAINED_FRACTION = high-water mark: a pod admitted up to the
    # mark stays within capacity even if every room grows back to its full reservation.
    counted = math.fsum(MODEL.effective(r, m, age) for r, m, age in rooms)
    worst = math.fsum(max(r, m or 0.0) for r, m, _ in rooms)
    assert worst <= counted / MODEL.retained_fraction + 1e-6
