"""End to end, the security review's findings on a real cluster.

Finding 1, a pod is an SFU pod of a Region only if the operator created it: rogue pods
copy a real SFU pod's labels, ownerReferences, ServiceAccount and whole spec, one in the
Region's own namespace and one in another; both run the real SFU, are Ready and
report with a valid projected token of the capacity audience bound to themselves. The
operator refuses their reports, places no room on them, does not count them, and records
it: a Warning Event on each pod (and on the Region) and a refusal metric.

Finding 3, one listener per audience: the operator's public port serves the join API
alone, and SFU pods report to an internal HTTPS port, verifying it with the CA the
operator publishes to them.

Finding 5, join-token keys rotate without a restart: a key added to the signing Secret
signs a pod's tokens once the pod holds it, a removed key keeps verifying the tokens it
signed until they expire, and a removed key that signed nothing stops verifying at once.
"""

from __future__ import annotations

import copy
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fixtures.cluster import api_key_secret, apply, is_ready, ready_pods, remove
from fixtures.cluster import get_json as get
from fixtures.joining import join_room, patch_signing_secret, private_pem_b64
from fixtures.sfu_clients import SignallingClient
from fixtures.sfu_metrics import SFU_REPORTS_ACKNOWLEDGED, sfu_metric
from fixtures.tls import TestCa
from fixtures.waiting import eventually, wait_for
from switchboard_api.contract import (
    REPORT_PATH,
    JoinGrants,
    ReportTls,
    SfuEnv,
    SfuMounts,
)
from switchboard_dev.operator_process import OPERATOR_NAMESPACE
from switchboard_operator.logic.jointokens import issue_join_token

pytestmark = [pytest.mark.cluster, pytest.mark.nodeagent]

REGION = "trust-eu"
MEDIA_NS = "e2e-trust-media"
OTHER_NS = "e2e-trust-elsewhere"
ROOMS_NS = "e2e-trust-rooms"
ROOMS = 6
API_KEY = "e2e-trust-key-0123456789abcdef"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


@pytest.fixture(scope="module")
def real_pod(operator, node_agent, crds_installed) -> dict:
    cluster = crds_installed
    cluster.create_namespace(MEDIA_NS, RESTRICTED)
    cluster.create_namespace(OTHER_NS, RESTRICTED)
    cluster.create_namespace(ROOMS_NS)
    apply(
        cluster,
        {
            "apiVersion": "switchboard.dev/v1alpha1",
            "kind": "Region",
            "metadata": {"name": REGION},
            "spec": {
                "namespace": MEDIA_NS,
                "topologyRegion": "eu-west",
                "location": {"latitude": 52.0, "longitude": 5.0},
                "sfu": {
                    "minReplicas": 1,
                    "maxReplicas": 1,
                    "capacityPerPod": 1000,
                    "placementPolicy": "LeastLoaded",
                },
                "turn": {"enabled": False},
            },
        },
    )
    try:
        wait_for(lambda: len(ready_pods(cluster, MEDIA_NS)) == 1, 120, "the Region's SFU pod")
        yield ready_pods(cluster, MEDIA_NS)[0]
    finally:
        for kind, name in (
            ("namespace", ROOMS_NS),
            ("region", REGION),
            ("namespace", MEDIA_NS),
            ("namespace", OTHER_NS),
        ):
            remove(cluster, kind, name)


def rogue_copy(real: dict, name: str, namespace: str) -> dict:
    """What anyone allowed to create pods can make of a real SFU pod: the same labels,
    ownerReferences, ServiceAccount and containers. Without a readiness probe it is Ready
    as soon as it runs."""
    spec = copy.deepcopy(real["spec"])
    spec["hostname"] = name
    for container in spec["containers"]:
        container.pop("readinessProbe", None)
    meta = real["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(meta["labels"]),
            "ownerReferences": copy.deepcopy(meta["ownerReferences"]),
        },
        "spec": spec,
    }


def pod(cluster, namespace: str, name: str) -> dict:
    return get(cluster, "pod", name, "-n", namespace)


def pod_events(cluster, namespace: str, uid: str, reason: str) -> list[dict]:
    items = get(cluster, "events", "-n", namespace)["items"]
    return [e for e in items if e["involvedObject"].get("uid") == uid and e.get("reason") == reason]


def region_events_naming(cluster, uid: str, reason: str) -> list[dict]:
    """Events on the (cluster-scoped) Region, which live in `default`, naming `uid`."""
    items = get(cluster, "events", "-n", "default")["items"]
    return [
        e
        for e in items
        if e["involvedObject"].get("name") == REGION
        and e.get("reason") == reason
        and uid in e.get("message", "")
    ]


def refused_untrusted(operator) -> float:
    with urllib.request.urlopen(operator.metrics_url, timeout=10) as response:
        text = response.read().decode()
    sample = 'switchboard_capacity_reports_refused_total{reason="untrusted_pod"}'
    line = next(line for line in text.splitlines() if line.startswith(sample))
    return float(line.split()[-1])


def test_pods_the_operator_did_not_create_get_no_rooms_and_are_recorded(
    crds_installed, operator, real_pod
):
    cluster = crds_installed
    real_name = real_pod["metadata"]["name"]
    account = real_pod["spec"]["serviceAccountName"]
    # Elsewhere, the same ServiceAccount name and the join keys the pod mounts.
    cluster.kubectl("create", "serviceaccount", account, "-n", OTHER_NS)
    keys = get(cluster, "configmap", "-n", MEDIA_NS, "-o", "json")["items"]
    for volume in real_pod["spec"]["volumes"]:
        source = volume.get("configMap")
        if source:
            data = next(c for c in keys if c["metadata"]["name"] == source["name"])["data"]
            apply(
                cluster,
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": source["name"], "namespace": OTHER_NS},
                    "data": data,
                },
            )
    rogues = [(MEDIA_NS, f"{REGION}-sfu-rogue1"), (OTHER_NS, f"{REGION}-sfu-rogue2")]
    for namespace, name in rogues:
        apply(cluster, rogue_copy(real_pod, name, namespace))
    for namespace, name in rogues:
        wait_for(lambda: is_ready(pod(cluster, namespace, name)), 120, f"rogue {name} Ready")  # noqa: B023
    uids = {name: pod(cluster, namespace, name)["metadata"]["uid"] for namespace, name in rogues}

    # Each rogue's reports are refused and recorded: a Warning Event on the pod, another
    # on the Region (whose owner learns of pods that pretend to be its own), and a metric.
    for namespace, name in rogues:
        uid = uids[name]
        wait_for(
            lambda: pod_events(cluster, namespace, uid, "CapacityReportRefused"),  # noqa: B023
            60,
            f"a CapacityReportRefused Event on {namespace}/{name}",
        )
        wait_for(
            lambda: region_events_naming(cluster, uid, "UntrustedSfuPod"),  # noqa: B023
            60,
            f"an UntrustedSfuPod Event on the Region naming {name}",
        )
    wait_for(lambda: refused_untrusted(operator) >= 2, 30, "refusals counted by the operator")

    # Rooms go to the pod the operator created only, although the rogues are Ready, empty,
    # and advertise the same capacity (LeastLoaded would prefer them).
    for i in range(ROOMS):
        apply(
            cluster,
            {
                "apiVersion": "switchboard.dev/v1alpha1",
                "kind": "Room",
                "metadata": {"name": f"room-{i}", "namespace": ROOMS_NS},
                "spec": {"region": REGION, "maxParticipants": 4},
            },
        )

    def placed() -> dict[str, str]:
        items = get(cluster, "rooms", "-n", ROOMS_NS)["items"]
        found = {r["metadata"]["name"]: (r.get("status") or {}).get("pod") for r in items}
        return found if all(found.values()) and len(found) == ROOMS else {}

    placements = wait_for(placed, 60, "every room placed")
    assert set(placements.values()) == {real_name}, json.dumps(placements)

    # The Region counts and records only its own pod.
    status = get(cluster, "region", REGION)["status"]
    assert status["sfu"]["readyReplicas"] == 1
    assert status["sfu"]["pods"] == [{"name": real_name, "uid": real_pod["metadata"]["uid"]}]
    # And keeps refusing: the refusals go on while the rogues keep reporting.
    counted = refused_untrusted(operator)
    wait_for(lambda: refused_untrusted(operator) > counted, 30, "further refusals counted")


# Finding 5: join-token key rotation.

NEW_KID = "29991231-rotated"
"""Newer than the operator's own key (kids sort by their date)."""
UNUSED_KID = "10000101-unused"
"""Older than both: it never signs, so removing it withdraws it at once."""


async def join(operator, room: str, identity: str) -> dict:
    return await join_room(operator.http_url, ROOMS_NS, room, identity, API_KEY, create=True)


async def sfu_answer(joined: dict, token: str) -> str:
    """What the SFU answers a join with `token`: `joined`, or the refusal's code."""
    url = joined["url"].replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"
    client = SignallingClient(url)
    try:
        reply = await client.connect(token)
    finally:
        await client.close()
    return reply["type"] if reply["type"] == "joined" else reply["error"]


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


async def test_join_keys_rotate_without_a_restart(crds_installed, operator, real_pod):
    cluster = crds_installed
    apply(cluster, api_key_secret("e2e-trust-api-key", OPERATOR_NAMESPACE, API_KEY, ROOMS_NS))
    room = "rotation"
    before = await eventually(
        lambda: join(operator, room, "alice"), 60, "a join before the rotation"
    )
    old_kid = kid_of(before["token"])
    assert old_kid < NEW_KID

    # A new key: it signs this pod's tokens once the pod reports holding it.
    patch_signing_secret(cluster, {NEW_KID: private_pem_b64(Ed25519PrivateKey.generate())})

    async def signed_with_new_key() -> dict | None:
        joined = await join(operator, room, "bob")
        return joined if kid_of(joined["token"]) == NEW_KID else None

    after = await eventually(signed_with_new_key, 90, "a token signed with the new key")
    for joined in (before, after):
        assert await sfu_answer(joined, joined["token"]) == "joined"

    # A key that never signed a token: published at once, and withdrawn at once when it
    # is removed; the SFU then refuses what it signs.
    unused = Ed25519PrivateKey.generate()
    patch_signing_secret(cluster, {UNUSED_KID: private_pem_b64(unused)})
    forged = issue_join_token(
        identity="carol",
        room=f"{ROOMS_NS}/{room}",
        pod=after["pod"],
        pod_uid=after["podUID"],
        grants=JoinGrants(),
        key=unused,
        kid=UNUSED_KID,
        now_unix=time.time(),
    ).token
    await eventually(
        lambda: sfu_answer(after, forged),
        90,
        "the added key to verify at the SFU",
        until=lambda answer: answer == "joined",
    )
    # The old key (which signed `before`, still valid) and the unused one are removed.
    patch_signing_secret(cluster, {UNUSED_KID: None, old_kid: None})
    await eventually(
        lambda: sfu_answer(after, forged),
        90,
        "a token of the removed key to be refused",
        until=lambda answer: answer == "unknown-key",
    )
    # Throughout: tokens signed before and after the rotation are accepted, the old key
    # kept until the tokens it signed expire; new tokens use the new key.
    assert await sfu_answer(before, before["token"]) == "joined"
    assert await sfu_answer(after, after["token"]) == "joined"
    assert kid_of((await join(operator, room, "dave"))["token"]) == NEW_KID


def status_of(method: str, url: str, context: ssl.SSLContext | None = None) -> int:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def published_ca(cluster) -> str:
    configmap = get(cluster, "configmap", ReportTls.CA_CONFIGMAP, "-n", MEDIA_NS)
    assert set(configmap["data"]) == {ReportTls.CA_KEY}  # the certificate, never a key
    return configmap["data"][ReportTls.CA_KEY]


def test_the_public_port_serves_joins_alone_and_sfu_pods_report_over_verified_tls(
    crds_installed, operator, real_pod, tmp_path
):
    """Finding 3: exposing the join API exposes nothing else, and SFU pods report to an
    internal HTTPS listener whose certificate chains to the CA the operator publishes to
    them (and to no other)."""
    public = operator.http_url
    assert status_of("POST", public + REPORT_PATH) == 404
    assert status_of("GET", public + "/metrics") == 404

    report_url = operator.report_url
    assert report_url.startswith("https://")
    assert urllib.parse.urlsplit(report_url).port != urllib.parse.urlsplit(public).port
    ca = published_ca(crds_installed)
    trusting = ssl.create_default_context(cadata=ca)
    # The receiver answers over TLS verified by the published CA (a tokenless report: 401).
    assert status_of("POST", report_url, trusting) == 401
    other = TestCa(tmp_path)
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        status_of("POST", report_url, other.client_context())

    # The SFU pod mounts that CA and verifies the receiver with it; its reports are
    # acknowledged.
    env = {e["name"]: e.get("value") for e in real_pod["spec"]["containers"][0]["env"]}
    assert env[SfuEnv.REPORT_URL] == report_url
    assert env[SfuEnv.REPORT_CA_FILE] == SfuMounts.REPORT_CA_FILE
    assert sfu_metric(real_pod, SFU_REPORTS_ACKNOWLEDGED) > 0
