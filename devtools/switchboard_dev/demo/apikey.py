"""The demo's own room namespace and API key: the key may join, and create, rooms in that
namespace only. Its value goes to the dev tooling and the printed summary, never to a page."""

from __future__ import annotations

import json
import secrets
from typing import Final

from switchboard_api.apikeys import API_KEY_LABEL, API_KEY_LABEL_VALUE, ApiKeyData
from switchboard_dev.operator_process import OPERATOR_NAMESPACE
from switchboard_localcluster.controlplane import ControlPlane

DEMO_NAMESPACE: Final = "demo"
"""The only namespace the demo key may join rooms in."""
DEMO_KEY_SECRET: Final = "switchboard-demo"
"""Name of the demo key's Secret in the operator's namespace."""


def install_demo_key(cluster: ControlPlane) -> str:
    """Create DEMO_NAMESPACE and a fresh demo API key Secret; return the key's value."""
    if cluster.kubectl("get", "namespace", DEMO_NAMESPACE, check=False).returncode != 0:
        cluster.kubectl("create", "namespace", DEMO_NAMESPACE)
    key = secrets.token_hex(24)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": DEMO_KEY_SECRET,
            "namespace": OPERATOR_NAMESPACE,
            "labels": {API_KEY_LABEL: API_KEY_LABEL_VALUE},
        },
        "stringData": {
            ApiKeyData.KEY: key,
            ApiKeyData.NAMESPACES: DEMO_NAMESPACE,
            ApiKeyData.CREATE: "true",
        },
    }
    # On stdin, so the value never shows in a process list.
    cluster.kubectl("apply", "-f", "-", input=json.dumps(secret))
    return key
