"""The report receiver's CA and serving certificate live in a Secret, against the real API
server: a restarted or newly elected operator serves the same CA the SFU pods trust, and a
serving certificate that is due is reissued by the same CA and served to new connections
without a restart (finding 3)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ssl
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from cryptography import x509
from kubernetes_asyncio import client, config

from fixtures.cluster import Cluster
from fixtures.waiting import eventually
from switchboard_api.contract import ReportTls
from switchboard_localcluster.controlplane import free_port
from switchboard_operator.httpserver import HttpServer
from switchboard_operator.logic.report_certs import issue_serving, new_ca
from switchboard_operator.reportapi.tls import ReportCertificates
from switchboard_tls import ReloadingCertificate

pytestmark = pytest.mark.cluster

NAMESPACE = "report-tls-test"
NAMES = ("127.0.0.1",)


@pytest.fixture(scope="module")
def namespace(control_plane: Cluster) -> str:
    if control_plane.kubectl("get", "namespace", NAMESPACE, check=False).returncode:
        control_plane.create_namespace(NAMESPACE)
    return NAMESPACE


@pytest.fixture
async def api(control_plane: Cluster, namespace: str) -> AsyncIterator[client.ApiClient]:
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(control_plane.kubeconfig), client_configuration=configuration
    )
    async with client.ApiClient(configuration) as api:
        yield api
    control_plane.kubectl(
        "delete", "secret", ReportTls.SERVING_SECRET, "-n", namespace, check=False
    )


async def served_certificate(port: int, ca_pem: str) -> x509.Certificate:
    """The certificate a new connection is served, verified by `ca_pem` for 127.0.0.1."""
    context = ssl.create_default_context(cadata=ca_pem)
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return x509.load_der_x509_certificate(der)


async def test_the_ca_outlives_the_operator_and_a_due_certificate_is_reissued_live(
    api: client.ApiClient, namespace: str
) -> None:
    first = ReportCertificates(api, namespace, NAMES)
    await first.converge()
    tls = ReloadingCertificate(first.files, check_interval_seconds=0.1)
    port = free_port()
    server = HttpServer(web.Application(), "127.0.0.1", port, tls)
    await server.start()
    try:
        before = await served_certificate(port, first.ca_pem)

        # A restart (or a standby taking over) serves exactly what the Secret holds.
        second = ReportCertificates(api, namespace, NAMES)
        await second.converge()
        assert second.ca_pem == first.ca_pem
        assert second.files.cert.read_bytes() == first.files.cert.read_bytes()
        await second.stop()

        # A serving certificate that no longer names the receiver's host is due: the CA
        # in the Secret issues a new one, which new connections get without a restart.
        secret = await client.CoreV1Api(api).read_namespaced_secret(
            ReportTls.SERVING_SECRET, namespace
        )
        data = dict(secret.data)
        now = dt.datetime.now(dt.UTC)
        stale = issue_serving(new_ca(now), ("elsewhere.example",), now)
        data["tls.crt"] = base64.b64encode(stale.cert_pem).decode()
        data["tls.key"] = base64.b64encode(stale.key_pem).decode()
        await client.CoreV1Api(api).patch_namespaced_secret(
            ReportTls.SERVING_SECRET, namespace, {"data": data}
        )
        await first.converge()
        assert first.ca_pem == second.ca_pem

        async def renewed() -> bool:
            return (await served_certificate(port, first.ca_pem)).serial_number != (
                before.serial_number
            )

        await eventually(renewed, 10, "the reissued certificate served")
    finally:
        await server.stop()
        await first.stop()
