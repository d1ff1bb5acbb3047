"""Custody of the join-token signing keys: a Secret only the control plane reads.

At start the operator loads the Ed25519 keys from its Secret, creating the Secret with a
fresh key on first install. Public keys are published (by the Region reconciler) as a
ConfigMap in each Region's namespace, where SFU pods mount them.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import secrets
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kubernetes_asyncio import client

from switchboard_api.contract import JoinKeySecrets
from switchboard_operator.kube import objects
from switchboard_operator.logic.jointokens import PRIVATE_SUFFIX, JoinKeys, parse_join_keys

log = logging.getLogger(__name__)


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
