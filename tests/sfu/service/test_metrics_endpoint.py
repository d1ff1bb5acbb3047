"""/metrics, on the internal metrics port only, is valid Prometheus text with every family
the registry names (base units, `_total` counters); probes answer on the public port."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from switchboard_api import metrics

EXPECTED_STANDARD = {
    "process_cpu_seconds": "counter",
    "process_resident_memory_bytes": "gauge",
}


async def test_metrics_parse_with_every_registered_family(sfu) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(sfu.metrics_url) as reply,
    ):
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = await reply.text()

    families = {family.name: family for family in text_string_to_metric_families(text)}

    # The capacity-report families exist only with a control plane to report to.
    stand_alone = {
        metrics.SFU_CAPACITY_REPORTS,
        metrics.SFU_CAPACITY_REPORT_LAST_ACK,
        metrics.SFU_PEER_CHECKS,
    }
    expected = {
        spec.family: str(spec.type) for spec in metrics.SFU if spec not in stand_alone
    } | EXPECTED_STANDARD
    found = {name: families[name].type if name in families else None for name in expected}
    assert found == expected
    [build] = families["switchboard_build_info"].samples
    assert build.labels["component"] == "sfu"
    for family in families.values():
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
    [ratio] = families["switchboard_sfu_load_ratio"].samples
    assert ratio.value == 0.0
    [capacity] = families["switchboard_sfu_capacity_units"].samples
    assert capacity.value == 20.0


async def test_metrics_are_not_served_on_the_public_port(sfu) -> None:
    status, _ = await sfu.get("/metrics")
    assert status == 404


async def test_probes(sfu) -> None:
    assert (await sfu.get("/healthz"))[0] == 200
    status, body = await sfu.get("/readyz")
    assert status == 200
    assert '"ready": true' in body
