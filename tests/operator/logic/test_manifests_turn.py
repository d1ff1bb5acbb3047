"""The Region's TURN objects: the Secret, coturn's Deployment and Service, and TURN URIs."""

from __future__ import annotations

import base64
import json

import pytest
from manifests_builders import MINTED_SECRET, SECRETS, TURN_IMAGE, container, context, region

from switchboard_operator.logic.manifests import (
    TURN_SECRET_ROTATED_AT,
    ManifestError,
    desired_objects,
    sfu_pod,
    turn_deployment,
    turn_secret,
    turn_secrets_from_secret,
    turn_service,
    turn_uris,
)
from switchboard_turn.coturn import SecretPhase, TurnSecrets

NEXT_SECRET = "next-secret-fedcba9876543210"
TLS = {"tlsSecretName": "turn-cert", "tlsPort": 443}


def _pod_spec(region_=None) -> dict:
    return turn_deployment(region_ or region(), context())["spec"]["template"]["spec"]


def _coturn(region_=None) -> dict:
    return container(_pod_spec(region_), "coturn")


def test_secret_holds_every_accepted_secret_and_reads_back_the_same():
    secrets = SECRETS.begin_rotation(NEXT_SECRET)
    secret = turn_secret(region(), secrets, rotated_at="2025-01-01T00:00:00Z")
    assert secret["metadata"]["name"] == "eu-west-turn-secret"
    assert secret["type"] == "Opaque"
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {"secret": MINTED_SECRET, "next": NEXT_SECRET}
    assert secret["metadata"]["annotations"] == {TURN_SECRET_ROTATED_AT: "2025-01-01T00:00:00Z"}
    read = turn_secrets_from_secret(secret)
    assert read == secrets
    assert read.phase is SecretPhase.ACCEPTING


def test_a_hand_damaged_secret_is_reported_not_crashed_on():
    secret = turn_secret(region(), SECRETS)
    del secret["data"]["secret"]
    with pytest.raises(ManifestError) as caught:
        turn_secrets_from_secret(secret)
    assert caught.value.reason == "InvalidTurnSecret"
    secret["data"] = {"secret": "not base64!"}
    with pytest.raises(ManifestError):
        turn_secrets_from_secret(secret)


def test_secret_values_appear_only_in_the_secret():
    """Not in args, env literals, annotations or anything else a `kubectl get` shows."""
    secrets = TurnSecrets(minted=MINTED_SECRET, next=NEXT_SECRET)
    reg = region(turn=TLS)
    objects = desired_objects(reg, context(), turn_secrets=secrets)
    objects.append(sfu_pod(reg, context(), "abcde"))
    for manifest in objects:
        if manifest["kind"] == "Secret":
            continue
        text = json.dumps(manifest)
        assert MINTED_SECRET not in text and NEXT_SECRET not in text, manifest["kind"]
        for encoded in turn_secret(reg, secrets)["data"].values():
            assert encoded not in text
    pod = _pod_spec(reg)
    for c in pod["containers"] + pod["initContainers"]:
        assert not [e for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]


def test_coturn_runs_with_rest_api_auth_realm_ports_and_hardening():
    reg = region(turn={"realm": "eu.example.com", "relayPortRange": {"min": 50000, "max": 50999}})
    coturn = _coturn(reg)
    # The image's entrypoint (tini -- turnserver): a command would make turnserver the
    # container's process 1, which ignores SIGTERM.
    assert "command" not in coturn
    args = coturn["args"]
    for expected in [
        "--use-auth-secret",
        "--realm=eu.example.com",
        "--listening-port=3478",
        "--min-port=50000",
        "--max-port=50999",
        "--no-cli",
        "--fingerprint",
        "--no-tlsv1",
        "--no-tlsv1_1",
        "--no-multicast-peers",
        "--log-file=stdout",
        "--no-tls",
        "--allowed-peer-ip=10.244.0.0-10.244.255.255",
        "--denied-peer-ip=10.0.0.0-10.255.255.255",
    ]:
        assert expected in args
    assert "--prometheus" not in args
    # Listens and relays on the pod IP the kubelet substitutes.
    assert "--listening-ip=$(POD_IP)" in args
    env = {e["name"]: e for e in coturn["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


def test_coturn_userdb_is_written_by_the_sync_containers_from_the_secret():
    spec = _pod_spec()
    coturn = container(spec, "coturn")
    userdb_arg = next(a for a in coturn["args"] if a.startswith("--userdb="))
    userdb_path = userdb_arg.split("=", 1)[1]
    volumes = {v["name"]: v for v in spec["volumes"]}
    (init,) = spec["initContainers"]
    sidecar = container(spec, "secret-sync")
    for sync in (init, sidecar):
        assert sync["command"] == ["switchboard-turn-secret-sync"]
        assert f"--userdb={userdb_path}" in sync["args"]
        assert "--realm=switchboard.dev" in sync["args"]
        mounts = {m["name"]: m for m in sync["volumeMounts"]}
        secret_mount = next(m for m in mounts.values() if "secret" in volumes[m["name"]])
        assert volumes[secret_mount["name"]]["secret"]["secretName"] == "eu-west-turn-secret"
        assert f"--secrets-dir={secret_mount['mountPath']}" in sync["args"]
    assert "--once" in init["args"]
    assert "--once" not in sidecar["args"]
    db_volume = next(
        m["name"] for m in coturn["volumeMounts"] if userdb_path.startswith(m["mountPath"])
    )
    assert volumes[db_volume]["emptyDir"]["medium"] == "Memory"
    # coturn itself never sees the Secret.
    assert not [
        m for m in coturn["volumeMounts"] if "secret" in volumes[m["name"]] and m["name"] != "tls"
    ]


def test_tls_serves_turns_from_the_referenced_secret():
    reg = region(turn=TLS)
    spec = _pod_spec(reg)
    coturn = container(spec, "coturn")
    assert "--tls-listening-port=443" in coturn["args"]
    assert "--no-tls" not in coturn["args"]
    (tls,) = [v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == "turn-cert"]
    (mount,) = [m for m in coturn["volumeMounts"] if m["name"] == tls["name"]]
    assert f"--cert={mount['mountPath']}/tls.crt" in coturn["args"]
    assert f"--pkey={mount['mountPath']}/tls.key" in coturn["args"]


def test_a_renewed_certificate_is_signalled_to_coturn_by_the_sidecar():
    spec = _pod_spec(region(turn=TLS))
    coturn, sidecar = container(spec, "coturn"), container(spec, "secret-sync")
    # The sidecar sees coturn's process (SIGUSR2 makes coturn reload its certificate).
    assert spec["shareProcessNamespace"] is True
    cert_dir = next(m["mountPath"] for m in coturn["volumeMounts"] if m["name"] == "tls")
    assert f"--tls-dir={cert_dir}" in sidecar["args"]
    pidfile = next(a for a in coturn["args"] if a.startswith("--pidfile="))
    assert pidfile in sidecar["args"]
    shared = {m["name"]: m["mountPath"] for m in coturn["volumeMounts"]}
    for mount in sidecar["volumeMounts"]:
        if mount["name"] in ("tls", "tmp"):
            assert shared[mount["name"]] == mount["mountPath"]
            assert mount["readOnly"] is True
    assert pidfile.removeprefix("--pidfile=").startswith(shared["tmp"] + "/")
    # Without TLS nothing is shared.
    assert "shareProcessNamespace" not in _pod_spec()
    assert {"name": "turns-tcp", "containerPort": 443, "protocol": "TCP"} in coturn["ports"]


def test_ports_below_1024_are_bound_through_the_sysctl_not_capabilities():
    low = _pod_spec(region(turn=TLS))
    assert low["securityContext"]["sysctls"] == [
        {"name": "net.ipv4.ip_unprivileged_port_start", "value": "443"}
    ]
    assert "sysctls" not in _pod_spec()["securityContext"]
    for spec in (low, _pod_spec()):
        for c in spec["containers"] + spec["initContainers"]:
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_prometheus_exporter_is_opt_in():
    reg = region(
        turn={"prometheusExporter": True, "image": "registry.example/coturn-prometheus:4.6"}
    )
    deployment = turn_deployment(reg, context())
    coturn = container(deployment["spec"]["template"]["spec"], "coturn")
    assert "--prometheus" in coturn["args"]
    assert {"name": "metrics", "containerPort": 9641, "protocol": "TCP"} in coturn["ports"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9641"
    assert "annotations" not in turn_deployment(region(), context())["spec"]["template"]["metadata"]


def test_an_exporter_the_operators_turn_image_lacks_is_refused():
    """Debian's coturn has no --prometheus: the Region is Degraded with a clear reason
    rather than a coturn that exits on an unknown option."""
    with pytest.raises(ManifestError) as refused:
        turn_deployment(region(turn={"prometheusExporter": True}), context())
    assert refused.value.reason == "PrometheusExporterUnsupported"
    assert refused.value.field == "spec.turn.prometheusExporter"
    assert TURN_IMAGE in refused.value.message
    # An operator whose TURN image has an exporter serves it.
    served = turn_deployment(
        region(turn={"prometheusExporter": True}), context(turn_image_prometheus=True)
    )
    coturn = container(served["spec"]["template"]["spec"], "coturn")
    assert "--prometheus" in coturn["args"]


def test_unset_images_are_the_operators_and_the_sidecar_always_is():
    spec = turn_deployment(region(), context())["spec"]["template"]["spec"]
    assert container(spec, "coturn")["image"] == TURN_IMAGE
    assert container(spec, "secret-sync")["image"] == TURN_IMAGE
    assert spec["initContainers"][0]["image"] == TURN_IMAGE
    custom = turn_deployment(
        region(turn={"image": "registry.example/coturn:4.6", "imagePullPolicy": "Always"}),
        context(image_pull_policy="Never"),
    )["spec"]["template"]["spec"]
    assert container(custom, "coturn")["image"] == "registry.example/coturn:4.6"
    assert container(custom, "coturn")["imagePullPolicy"] == "Always"
    assert container(custom, "secret-sync")["image"] == TURN_IMAGE
    assert container(custom, "secret-sync")["imagePullPolicy"] == "Never"


def test_deployment_scales_from_the_spec_and_selects_its_own_pods():
    deployment = turn_deployment(region(turn={"replicas": 3}), context())
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    selector = spec["selector"]["matchLabels"]
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()
    assert selector == {"switchboard.dev/region": "eu-west", "app.kubernetes.io/component": "turn"}
    assert spec["template"]["spec"]["serviceAccountName"] == "eu-west-turn"
    assert spec["template"]["spec"]["automountServiceAccountToken"] is False
    assert spec["template"]["spec"]["nodeSelector"] == {"topology.kubernetes.io/region": "eu-west"}


def test_readiness_is_the_tcp_listener():
    probe = _coturn()["readinessProbe"]
    assert probe["tcpSocket"] == {"port": "turn-tcp"}
    assert {"name": "turn-tcp", "containerPort": 3478, "protocol": "TCP"} in _coturn()["ports"]


def test_no_turn_image_anywhere_is_a_clear_error():
    with pytest.raises(ManifestError) as caught:
        turn_deployment(region(turn={"image": " "}), context(turn_image=""))
    assert caught.value.reason == "ImageUnset"
    assert caught.value.field == "spec.turn"


def test_service_exposes_udp_and_tcp_and_tls_when_configured():
    service = turn_service(region(), context())
    assert [(p["name"], p["port"], p["protocol"]) for p in service["spec"]["ports"]] == [
        ("turn-udp", 3478, "UDP"),
        ("turn-tcp", 3478, "TCP"),
    ]
    assert service["spec"]["type"] == "ClusterIP"
    assert "externalTrafficPolicy" not in service["spec"]
    tls = turn_service(region(turn=TLS), context(turn_service_type="LoadBalancer"))
    assert ("turns-tcp", 443, "TCP") in [
        (p["name"], p["port"], p["protocol"]) for p in tls["spec"]["ports"]
    ]
    assert tls["spec"]["type"] == "LoadBalancer"
    assert tls["spec"]["externalTrafficPolicy"] == "Local"


def test_turn_uris_name_every_listener():
    assert turn_uris(region(), "turn.example.com") == [
        "turn:turn.example.com:3478?transport=udp",
        "turn:turn.example.com:3478?transport=tcp",
    ]
    assert turn_uris(region(turn=TLS), "2001:db8::7")[-1] == "turns:[2001:db8::7]:443?transport=tcp"
    assert turn_uris(region(turn={"enabled": False}), "turn.example.com") == []
