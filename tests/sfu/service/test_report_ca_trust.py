"""An SFU pod reports only to a control plane whose certificate chains to the CA the
operator published (SWITCHBOARD_REPORT_CA_FILE), never to one its image's trust store or
another CA vouches for: the report and its token go nowhere else (finding 3)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from fixtures.sfu_harness import SFU_WAIT_SECONDS, ReportReceiver
from fixtures.tls import TestCa
from fixtures.waiting import eventually
from switchboard_api.contract import SfuEnv

FAILED = "switchboard_sfu_capacity_reports_total{outcome=failed}"
ACKNOWLEDGED = "switchboard_sfu_capacity_reports_total{outcome=acknowledged}"


def server_context(ca: TestCa) -> ssl.SSLContext:
    pair = ca.issue(ips=("127.0.0.1",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pair.cert, pair.key)
    return context


@pytest.fixture
def published(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "published")


@pytest.fixture
def other(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "other")


@pytest.fixture
async def tls_receiver() -> AsyncIterator[Callable[[TestCa], object]]:
    started: list[ReportReceiver] = []

    async def start(ca: TestCa) -> ReportReceiver:
        receiver = ReportReceiver(tls=server_context(ca))
        await receiver.start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        await receiver.stop()


async def test_reports_reach_a_control_plane_certified_by_the_published_ca(
    start_sfu, tls_receiver, published
) -> None:
    receiver = await tls_receiver(published)
    sfu = await start_sfu(
        report_url=receiver.url, extra_env={SfuEnv.REPORT_CA_FILE: str(published.cert)}
    )

    await eventually(lambda: len(receiver.reports) >= 2, SFU_WAIT_SECONDS, "reports over TLS")
    assert (await sfu.metrics())[ACKNOWLEDGED] >= 1


async def test_a_server_certified_by_another_ca_gets_no_report_even_if_the_image_trusts_it(
    start_sfu, tls_receiver, published, other
) -> None:
    impostor = await tls_receiver(other)
    # OpenSSL's default trust store is that CA: only the published CA may count.
    env = {SfuEnv.REPORT_CA_FILE: str(published.cert), "SSL_CERT_FILE": str(other.cert)}
    sfu = await start_sfu(report_url=impostor.url, extra_env=env)

    async def failed() -> float:
        return (await sfu.metrics()).get(FAILED, 0.0)

    await eventually(
        failed, SFU_WAIT_SECONDS, "reports failing the handshake", until=lambda n: n >= 3
    )
    assert impostor.reports == []
    assert "CERTIFICATE_VERIFY_FAILED" in sfu.log()
