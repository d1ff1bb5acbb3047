"""Custody of the join-token signing keys: a Secret only the control plane reads.

At start the operator loads the Ed25519 keys from its Secret, creating the Secret with a
fresh key on first install, and then re-reads the Secret every few seconds, so a rotation
(a key added, later the old one removed) needs no restart (`logic/join_key_ring.py`
decides what each change means). Public keys are published (by the Region reconciler) as
a ConfigMap in each Region's namespace, where SFU pods mount them.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kubernetes_asyncio import client

from switchboard_api.contract import JoinKeySecrets
from switchboard_operator.kit.ticker import Periodic
from switchboard_operator.kube import objects
from switchboard_operator.logic.join_key_ring import JoinKeyRing
from switchboard_operator.logic.jointokens import PRIVATE_SUFFIX, JoinKeys, parse_join_keys

log = logging.getLogger(__name__)
RELOAD_SECONDS = 5.0
"""How often the signing Secret is re-read (one GET): a new key is published this soon."""


def _new_kid() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%d}-{secrets.token_hex(4)}"


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


async def load_or_create(
    api: client.ApiClient, namespace: str, owners: list[dict[str, Any]] | None = None
) -> JoinKeys:
    """`owners`: owner references for a new Secret (the operator's installation)."""
    name = JoinKeySecrets.SIGNING_SECRET
    existing = await objects.get(api, "Secret", name, namespace)
    if existing is None:
        kid = _new_kid()
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        if owners:
            metadata["ownerReferences"] = owners
        manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata,
            "type": "Opaque",
            "data": {
                f"{kid}{PRIVATE_SUFFIX}": base64.b64encode(
                    _pem(Ed25519PrivateKey.generate()).encode()
                ).decode()
            },
        }
        # Another replica may win the race: then its key is the one to use.
        await objects.create(api, manifest)
        existing = await objects.get(api, "Secret", name, namespace)
        assert existing is not None
        log.info("join signing key created secret=%s/%s", namespace, name)
    keys = parse_join_keys(existing)
    log.info(
        "join signing keys loaded kids=%s signing=%s", ",".join(keys.private), keys.signing_kid
    )
    return keys


class SigningKeyWatch:
    """Re-reads the signing Secret and hands a changed one to the key ring; `changed` is
    told when what is published or signs has changed (the Regions republish)."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        ring: JoinKeyRing,
        *,
        changed: Callable[[], None],
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._ring = ring
        self._changed = changed
        self._version: str | None = None
        self._periodic = Periodic("join-signing-keys", RELOAD_SECONDS, self.reload)

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def reload(self) -> None:
        name = JoinKeySecrets.SIGNING_SECRET
        secret = await objects.get(self._api, "Secret", name, self._namespace)
        if secret is None:
            log.warning("join signing key secret missing secret=%s/%s", self._namespace, name)
            return
        version = str(secret["metadata"].get("resourceVersion"))
        if version == self._version:
            return
        try:
            keys = parse_join_keys(secret)
        except ValueError as error:
            # Keep signing with the last good keys rather than with nothing.
            log.warning("join signing keys unusable, kept the previous ones error=%s", error)
            self._version = version
            return
        self._version = version
        if self._ring.replace(keys, time.time()):
            log.info(
                "join signing keys changed kids=%s newest=%s",
                ",".join(sorted(keys.private)),
                keys.signing_kid,
            )
            self._changed()
