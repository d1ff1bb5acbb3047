"""Custody of the report receiver's TLS: the CA and serving certificate live in a Secret
only the control plane reads, so a restarted or newly elected operator serves the same CA
the SFU pods already trust.

The leader loads the Secret (creating it on first install), reissues the serving
certificate when it nears its end or no longer names the report URL's host, and writes
the serving pair to a private directory, from which `switchboard_tls.ReloadingCertificate`
serves it: a renewal reaches new connections within seconds, without a restart. The CA
certificate (never its key) is what the Region reconciler publishes to SFU pods.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from kubernetes_asyncio import client

from switchboard_api.contract import ReportTls
from switchboard_operator.kit.ticker import Periodic
from switchboard_operator.kube import objects
from switchboard_operator.logic.report_certs import (
    KeyPair,
    ca_usable,
    issue_serving,
    new_ca,
    reissue_reason,
)
from switchboard_tls import CertificateFiles

log = logging.getLogger(__name__)

CHECK_SECONDS: Final = 300.0
"""How often the leader re-reads the Secret (one GET) and renews what is due."""
CA_KEY_FILE: Final = "ca.key"


class ReportCertificates:
    """The report receiver's CA and serving certificate, kept in the Secret
    `ReportTls.SERVING_SECRET` of the operator's namespace.

    `ca_changed` is told when the CA itself changed (the Secret was deleted and made
    anew): the Regions republish it."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        names: Sequence[str],
        *,
        owners: list[dict[str, Any]] | None = None,
        ca_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._names = tuple(names)
        self._owners = owners or []
        self.ca_changed = ca_changed
        self._directory = Path(tempfile.mkdtemp(prefix="switchboard-report-tls-"))
        self.files = CertificateFiles.in_directory(self._directory)
        self.ca_pem = ""
        self._periodic = Periodic("report-tls", CHECK_SECONDS, self.converge)

    async def converge(self) -> None:
        """Make the Secret hold a CA and a serving certificate due for nothing, and serve
        them."""
        now = dt.datetime.now(dt.UTC)
        name = ReportTls.SERVING_SECRET
        secret = await objects.get(self._api, "Secret", name, self._namespace)
        pairs = None if secret is None else _pairs(secret)
        if secret is None or pairs is None:
            ca = new_ca(now)
            serving = issue_serving(ca, self._names, now)
            if secret is None:
                created = await objects.create(self._api, self._manifest(ca, serving))
                if created is None:  # another replica won the race: serve its pair
                    return await self.converge()
            else:
                await self._update(secret, ca, serving)
            log.info("report ca created secret=%s/%s", self._namespace, name)
        else:
            ca, serving = pairs
            reason = reissue_reason(serving, ca, self._names, now)
            if reason is not None:
                serving = issue_serving(ca, self._names, now)
                await self._update(secret, ca, serving)
                log.info(
                    "report serving certificate reissued names=%s reason=%s",
                    ",".join(self._names),
                    reason,
                )
        self._serve(serving)
        ca_pem = ca.cert_pem.decode()
        if ca_pem != self.ca_pem:
            first = not self.ca_pem
            self.ca_pem = ca_pem
            if not first:
                self.ca_changed()

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
        shutil.rmtree(self._directory, ignore_errors=True)

    def _manifest(self, ca: KeyPair, serving: KeyPair) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": ReportTls.SERVING_SECRET, "namespace": self._namespace}
        if self._owners:
            metadata["ownerReferences"] = self._owners
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata,
            "type": "kubernetes.io/tls",
            "data": secret_data(ca, serving),
        }

    async def _update(self, secret: dict[str, Any], ca: KeyPair, serving: KeyPair) -> None:
        # The resourceVersion makes it a compare-and-swap: a concurrent writer wins, and
        # the next check serves what it wrote.
        version = secret["metadata"]["resourceVersion"]
        await objects.patch_merge(
            self._api,
            "Secret",
            ReportTls.SERVING_SECRET,
            self._namespace,
            {"metadata": {"resourceVersion": version}, "data": secret_data(ca, serving)},
        )

    def _serve(self, serving: KeyPair) -> None:
        """Write the pair where the listener re-reads it (each file replaced whole)."""
        for path, content in (
            (self.files.key, serving.key_pem),
            (self.files.cert, serving.cert_pem),
        ):
            with contextlib.suppress(FileNotFoundError):
                if path.read_bytes() == content:
                    continue
            staging = path.with_suffix(".tmp")
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(content)
            staging.replace(path)


def secret_data(ca: KeyPair, serving: KeyPair) -> dict[str, str]:
    """The Secret's `data`: the CA pair and the serving pair, base64."""
    files = {
        ReportTls.CA_KEY: ca.cert_pem,
        CA_KEY_FILE: ca.key_pem,
        "tls.crt": serving.cert_pem,
        "tls.key": serving.key_pem,
    }
    return {key: base64.b64encode(value).decode() for key, value in files.items()}


def _pairs(secret: dict[str, Any]) -> tuple[KeyPair, KeyPair] | None:
    """(CA, serving) from the Secret; None if it lacks a CA (or it is unreadable)."""
    data = secret.get("data") or {}
    try:
        files = {key: base64.b64decode(data[key]) for key in data}
        ca = KeyPair(files[ReportTls.CA_KEY], files[CA_KEY_FILE])
        serving = KeyPair(files.get("tls.crt", b""), files.get("tls.key", b""))
    except (KeyError, ValueError):
        ca = None
    if ca is None or not ca_usable(ca):
        log.warning("report tls secret unusable: made anew secret=%s", ReportTls.SERVING_SECRET)
        return None
    return ca, serving
