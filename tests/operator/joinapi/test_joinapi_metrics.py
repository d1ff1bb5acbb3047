"""Join API answers are counted by status code, with their latency."""

from __future__ import annotations


async def test_join_api_answers_are_counted_by_status_code(join_api):
    assert (await join_api.join()).status == 200
    assert (await join_api.join(key=None)).status == 401
    assert (await join_api.join(key=None)).status == 401
    registry = join_api.metrics.registry

    def answered(code: str) -> float | None:
        return registry.get_sample_value("switchboard_join_requests_total", {"code": code})

    assert answered("200") == 1
    assert answered("401") == 2
    # Every status the API can answer starts at 0, so its first answers show in rates.
    assert answered("503") == 0
    latency = "switchboard_join_request_duration_seconds_count"
    assert registry.get_sample_value(latency, {"code": "401"}) == 2
