"""The join API over HTTPS: the control plane's HTTP server serves the certificate of its
mounted Secret, verified by clients against a test CA, and serves a renewed certificate to
new connections without a restart. Nothing is answered in plain HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from joinapi_fakes import TEAM_KEY, FakePlacements, api_key_secret

from fixtures.tls import TestCa, mount_tls_secret, serial_of, served_serial
from fixtures.waiting import eventually
from switchboard_localcluster.controlplane import free_port
from switchboard_operator.config import OperatorConfig, OperatorConfigError
from switchboard_operator.httpserver import HttpServer, public_app
from switchboard_operator.joinapi import SecretApiKeyStore, join_api_app
from switchboard_tls import CertificateFiles, ReloadingCertificate

HOST = "switchboard.example.test"


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path)


@pytest.fixture
async def https_server(ca: TestCa, tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    secret = tmp_path / "join-api-tls"
    mount_tls_secret(secret, ca.issue(HOST, ips=("127.0.0.1",)))
    port = free_port()
    keys = SecretApiKeyStore(
        [api_key_secret("team-a", {"key": TEAM_KEY, "namespaces": "team-a", "create": "true"})]
    )
    app = public_app(join_api_app(FakePlacements(), keys))
    tls = ReloadingCertificate(CertificateFiles.in_directory(secret), check_interval_seconds=0.1)
    server = HttpServer(app, "127.0.0.1", port, tls)
    await server.start()
    try:
        yield port, secret
    finally:
        await server.stop()


async def test_joins_are_served_over_https_with_a_renewable_certificate(ca, https_server):
    port, secret = https_server
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ca.client_context())
    ) as client:
        async with client.post(
            f"https://127.0.0.1:{port}/v1/namespaces/team-a/rooms/standup/join",
            json={"identity": "alice"},
            headers={"Authorization": f"Bearer {TEAM_KEY}"},
        ) as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["room"] == "team-a/standup"

        with pytest.raises(aiohttp.ClientError):
            async with client.get(f"http://127.0.0.1:{port}/healthz") as response:
                await response.read()

    renewed = ca.issue(HOST, ips=("127.0.0.1",))
    mount_tls_secret(secret, renewed)

    async def renewed_served() -> bool:
        return await served_serial("127.0.0.1", port, ca, HOST) == serial_of(renewed)

    await eventually(renewed_served, 10, "the renewed certificate on new connections")


def test_tls_files_are_configured_together_and_make_the_join_api_url_https():
    files = {
        "SWITCHBOARD_TLS_CERT_FILE": "/tls/tls.crt",
        "SWITCHBOARD_TLS_KEY_FILE": "/tls/tls.key",
    }
    config = OperatorConfig.from_env({"POD_NAMESPACE": "sb", **files})
    assert config.tls == CertificateFiles(Path("/tls/tls.crt"), Path("/tls/tls.key"))
    assert config.join_api_public_url.startswith("https://switchboard-operator.sb.svc:")
    with pytest.raises(OperatorConfigError, match="set together"):
        OperatorConfig.from_env({"SWITCHBOARD_TLS_CERT_FILE": "/tls/tls.crt"})
