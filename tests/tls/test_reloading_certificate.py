"""A server's TLS certificate follows its mounted Secret: real handshakes against a test CA
see the renewed certificate without a restart, with or without SNI, while connections
opened before the renewal carry on; a renewal that cannot load leaves the last good one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fixtures.tls import TestCa, mount_tls_secret, serial_of, served_serial
from fixtures.waiting import eventually
from switchboard_tls import CertificateFiles, ReloadingCertificate, TlsConfigError

NAME = "sfu-0.sfu.example.test"


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path)


class EchoServer:
    def __init__(self, certificate: ReloadingCertificate) -> None:
        self.certificate = certificate
        self.port = 0

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        writer.close()


@pytest.fixture
async def server(ca: TestCa, tmp_path: Path) -> AsyncIterator[EchoServer]:
    secret = tmp_path / "secret"
    mount_tls_secret(secret, ca.issue(NAME, "*.sfu.example.test", ips=("127.0.0.1",)))
    echo = EchoServer(
        ReloadingCertificate(CertificateFiles.in_directory(secret), check_interval_seconds=0.05)
    )
    listener = await asyncio.start_server(echo._echo, "127.0.0.1", 0, ssl=echo.certificate.context)
    echo.port = listener.sockets[0].getsockname()[1]
    try:
        yield echo
    finally:
        listener.close()


async def test_a_renewed_certificate_is_served_to_new_handshakes(ca, server, tmp_path):
    secret = tmp_path / "secret"
    first = serial_of(ca.issue(NAME))  # not served: only to show serials differ
    assert await served_serial("127.0.0.1", server.port, ca, NAME) != first

    # A connection opened before the renewal.
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, ssl=ca.client_context(), server_hostname=NAME
    )
    renewed = ca.issue(NAME, ips=("127.0.0.1",))
    mount_tls_secret(secret, renewed)
    assert server.certificate.reload_if_changed()

    assert await served_serial("127.0.0.1", server.port, ca, NAME) == serial_of(renewed)
    # Clients that send no server name (an IP address URL) get it too.
    assert await served_serial("127.0.0.1", server.port, ca) == serial_of(renewed)
    writer.write(b"still here\n")
    assert await reader.readline() == b"still here\n"
    writer.close()


async def test_the_watch_picks_up_a_renewal_by_itself(ca, server, tmp_path):
    watch = asyncio.ensure_future(server.certificate.watch())
    try:
        renewed = ca.issue(NAME)
        mount_tls_secret(tmp_path / "secret", renewed)

        async def serves_renewed() -> bool:
            return await served_serial("127.0.0.1", server.port, ca, NAME) == serial_of(renewed)

        await eventually(serves_renewed, 10, "the renewed certificate to be served")
    finally:
        watch.cancel()


async def test_a_renewal_that_cannot_load_keeps_the_last_good_certificate(ca, server, tmp_path):
    secret = tmp_path / "secret"
    good = serial_of(ca.issue(NAME))
    served = await served_serial("127.0.0.1", server.port, ca, NAME)
    assert served != good
    one, other = ca.issue(NAME), ca.issue(NAME)
    # A certificate with another certificate's key.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tls.crt").write_bytes(one.cert.read_bytes())
    (broken / "tls.key").write_bytes(other.key.read_bytes())
    mount_tls_secret(secret, type(one)(broken / "tls.crt", broken / "tls.key"))

    assert not server.certificate.reload_if_changed()
    assert await served_serial("127.0.0.1", server.port, ca, NAME) == served

    mount_tls_secret(secret, other)
    assert server.certificate.reload_if_changed()
    assert await served_serial("127.0.0.1", server.port, ca, NAME) == serial_of(other)


def test_files_that_cannot_be_served_fail_at_start_naming_them(tmp_path):
    files = CertificateFiles.in_directory(tmp_path / "nowhere")
    with pytest.raises(TlsConfigError, match=r"nowhere/tls\.crt"):
        ReloadingCertificate(files)
