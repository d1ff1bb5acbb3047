"""A server-side TLS context whose certificate follows the files it was loaded from.

The kubelet updates a mounted Secret by swapping a symlink, and cert-manager renews a
certificate by rewriting its Secret, so a server that loaded its certificate once would
serve the old one until it restarts. `ReloadingCertificate.context` is the one SSLContext a
server listens with; each handshake is handed the context built from the files' latest
valid contents (through the SNI callback, which OpenSSL runs for every ClientHello, with or
without a server name). A change that does not load (a half-written pair, a key that does
not match) is logged and ignored: the last good certificate keeps being served.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509

log = logging.getLogger(__name__)

DEFAULT_CHECK_INTERVAL_SECONDS: Final = 2.0
"""How often the files are compared with what is served: a few reads of a few KiB."""


class TlsConfigError(ValueError):
    """The certificate files cannot be served (the message names them, never their
    contents)."""


@dataclass(frozen=True)
class CertificateFiles:
    """PEM certificate chain and private key, as a `kubernetes.io/tls` Secret mounts them
    (`tls.crt`, `tls.key`)."""

    cert: Path
    key: Path

    @classmethod
    def in_directory(cls, directory: Path) -> CertificateFiles:
        return cls(directory / "tls.crt", directory / "tls.key")

    def read(self) -> bytes:
        """Both files' contents, for change detection."""
        return self.cert.read_bytes() + b"\0" + self.key.read_bytes()


def _server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _describe(cert_pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = ",".join(str(n.value) for n in names)
    except x509.ExtensionNotFound:
        sans = "-"
    return (
        f"subject={cert.subject.rfc4514_string()} names={sans} "
        f"not_after={cert.not_valid_after_utc.isoformat()}"
    )


class ReloadingCertificate:
    """The TLS context of a server whose certificate is re-read when its files change.

    Construction loads the files and raises TlsConfigError if they cannot be served, so a
    misconfigured server fails at start; later changes apply with `reload_if_changed`
    (or `watch`, which calls it periodically).
    """

    def __init__(
        self,
        files: CertificateFiles,
        *,
        name: str = "server",
        check_interval_seconds: float = DEFAULT_CHECK_INTERVAL_SECONDS,
    ) -> None:
        self.files = files
        self.name = name
        self._interval = check_interval_seconds
        self.context = _server_context()
        self.context.sni_callback = self._select
        self._current, self._seen = self._build()
        # The listening context serves the same certificate itself, should a TLS library
        # ever skip the callback.
        self.context.load_cert_chain(files.cert, files.key)
        self.fingerprint = hashlib.sha256(self._seen).hexdigest()
        self.reloads = 0

    def _build(self) -> tuple[ssl.SSLContext, bytes]:
        try:
            contents = self.files.read()
            context = _server_context()
            context.load_cert_chain(self.files.cert, self.files.key)
            description = _describe(self.files.cert.read_bytes())
        except (OSError, ssl.SSLError, ValueError) as error:
            raise TlsConfigError(
                f"cannot serve TLS from {self.files.cert} and {self.files.key}: "
                f"{type(error).__name__}: {getattr(error, 'strerror', None) or error}"
            ) from None
        log.info("tls certificate loaded server=%s %s", self.name, description)
        return context, contents

    def _select(self, connection: ssl.SSLObject, _server_name: str | None, _: object) -> None:
        connection.context = self._current

    def reload_if_changed(self) -> bool:
        """Serve the files' current certificate if they changed and load; True if it is
        now served. A change that fails to load is logged once and otherwise ignored."""
        try:
            contents = self.files.read()
        except OSError as error:
            log.warning("tls certificate unreadable server=%s error=%s", self.name, error)
            return False
        if contents == self._seen:
            return False
        self._seen = contents
        try:
            context, loaded = self._build()
        except TlsConfigError as error:
            log.warning("tls certificate not reloaded server=%s reason=%s", self.name, error)
            return False
        if loaded != contents:
            # Changed again while loading: the next check loads the newer files.
            self._seen = loaded
        self._current = context
        self.fingerprint = hashlib.sha256(loaded).hexdigest()
        self.reloads += 1
        return True

    async def watch(self) -> None:
        """Re-check the files every interval until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            self.reload_if_changed()
