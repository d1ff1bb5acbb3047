"""/metrics is valid Prometheus text with the families operators alert on, named by the
conventions (base units, `_total` counters); probes answer."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

EXPECTED = {
    "switchboard_sfu_rooms": "gauge",
    "switchboard_sfu_participants": "gauge",
    "switchboard_sfu_published_tracks": "gauge",
    "switchboard_sfu_forwarded_tracks": "gauge",
    "switchboard_sfu_load_ratio": "gauge",
    "switchboard_sfu_load_units": "gauge",
    "switchboard_sfu_capacity_units": "gauge",
    "switchboard_sfu_rtp_received_packets": "counter",
    "switchboard_sfu_rtp_received_payload_bytes": "counter",
    "switchboard_sfu_rtp_sent_packets": "counter",
    "switchboard_sfu_rtp_sent_payload_bytes": "counter",
    "switchboard_sfu_rtp_lost_packets": "counter",
    "switchboard_sfu_nacks_received": "counter",
    "switchboard_sfu_keyframe_requests_received": "counter",
    "switchboard_sfu_forwarding_cpu_seconds": "counter",
    "switchboard_sfu_event_loop_lag_seconds": "histogram",
    "switchboard_sfu_joins_refused": "counter",
    "process_cpu_seconds": "counter",
    "process_resident_memory_bytes": "gauge",
}


async def test_metrics_parse_with_expected_families(sfu) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sfu.base_url}/metrics") as reply,
    ):
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = await reply.text()

    families = {family.name: family for family in text_string_to_metric_families(text)}

    found = {name: families[name].type if name in families else None for name in EXPECTED}
    assert found == EXPECTED
    for family in families.values():
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
    [ratio] = families["switchboard_sfu_load_ratio"].samples
    assert ratio.value == 0.0
    [capacity] = families["switchboard_sfu_capacity_units"].samples
    assert capacity.value == 20.0


async def test_probes(sfu) -> None:
    assert (await sfu.get("/healthz"))[0] == 200
    status, body = await sfu.get("/readyz")
    assert status == 200
    assert '"ready": true' in body
