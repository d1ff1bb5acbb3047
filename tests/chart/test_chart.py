"""The Helm chart lints, renders, and what it renders is accepted by a real API server."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from chart_render import NAMESPACE, render

from switchboard_dev.helm import helm_binary
from switchboard_dev.paths import CHART_DIR, OPERATOR_RBAC
from switchboard_operator.config import OperatorConfig


@pytest.fixture(scope="module")
def helm():
    return str(helm_binary(build=True))


@pytest.fixture(scope="module")
def rendered(helm):
    return render(helm)


def operator_env(docs: list[dict]) -> dict[str, str]:
    """The operator's environment as the rendered Deployment sets it (plain values)."""
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_chart_lints(helm):
    result = subprocess.run(
        [helm, "lint", "--strict", str(CHART_DIR)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_renders_crds_rbac_and_operator(rendered):
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in rendered)
    assert ("CustomResourceDefinition", "regions.switchboard.dev") in kinds
    assert ("CustomResourceDefinition", "rooms.switchboard.dev") in kinds
    assert ("Deployment", "switchboard-operator") in kinds
    # The test suite runs the operator under these very roles.
    roles = [d for d in rendered if d["kind"] in ("ClusterRole", "Role")]
    assert sorted(roles, key=str) == sorted(
        (yaml.safe_load(path.read_text()) for path in OPERATOR_RBAC), key=str
    )


def test_images_are_named_in_one_place_with_registry_tag_and_digest(helm):
    env = operator_env(render(helm))
    assert env["SWITCHBOARD_SFU_IMAGE"] == "switchboard/sfu:0.1.0"
    assert env["SWITCHBOARD_TURN_IMAGE"] == "switchboard/turn:0.1.0"
    docs = render(
        helm,
        "--set",
        "image.registry=registry.example.com:5000/",
        "--set",
        "image.tag=1.2.3",
        "--set",
        "image.digest.sfu=sha256:" + "a" * 64,
    )
    env = operator_env(docs)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com:5000/switchboard/operator:1.2.3"
    assert (
        env["SWITCHBOARD_SFU_IMAGE"]
        == "registry.example.com:5000/switchboard/sfu@sha256:" + "a" * 64
    )
    assert env["SWITCHBOARD_TURN_IMAGE"] == "registry.example.com:5000/switchboard/turn:1.2.3"
    # Ready means healthy (standbys too), and the Service selects the leader's label.
    assert container["readinessProbe"]["httpGet"]["port"] == "health"
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["spec"]["selector"]["switchboard.dev/leader"] == "true"


def test_join_api_public_url_defaults_to_the_operator_service(rendered):
    env = operator_env(rendered)
    service = next(d for d in rendered if d["kind"] == "Service")
    port = next(p for p in service["spec"]["ports"] if p["name"] == "http")
    expected = f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{port['port']}"
    assert env["SWITCHBOARD_JOIN_API_PUBLIC_URL"] == expected
    # The operator derives the same URL when the variable is absent.
    unset = {k: v for k, v in env.items() if k != "SWITCHBOARD_JOIN_API_PUBLIC_URL"}
    derived = OperatorConfig.from_env({**unset, "POD_NAMESPACE": NAMESPACE})
    assert derived.join_api_public_url == expected


def test_join_api_public_url_is_the_configured_ingress_url(helm):
    url = "https://rtc.example.com/switchboard"
    env = operator_env(render(helm, "--set", f"joinApi.publicURL={url}"))
    assert OperatorConfig.from_env(env).join_api_public_url == url


@pytest.mark.cluster
def test_rendered_chart_is_admitted_under_restricted_pod_security(rendered, control_plane):
    control_plane.create_namespace(NAMESPACE, {"pod-security.kubernetes.io/enforce": "restricted"})
    crds = [d for d in rendered if d["kind"] == "CustomResourceDefinition"]
    rest = [d for d in rendered if d["kind"] != "CustomResourceDefinition"]
    for docs in (crds, rest):
        result = control_plane.kubectl(
            "apply",
            "--dry-run=server",
            "-f",
            "-",
            input=yaml.safe_dump_all(docs),
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "would violate PodSecurity" not in result.stderr, result.stderr


def test_join_api_tls_mounts_the_secret_and_serves_https(helm):
    docs = render(helm, "--set", "joinApi.tls.secretName=switchboard-tls")
    env = operator_env(docs)
    config = OperatorConfig.from_env({**env, "POD_NAMESPACE": NAMESPACE})
    assert config.tls is not None
    assert config.join_api_public_url.startswith("https://")
    assert config.report_url.startswith("https://")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "switchboard-tls"
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert "subPath" not in mount  # subPath mounts never see the kubelet's updates
    assert str(config.tls.cert).startswith(mount["mountPath"] + "/")
    # Readiness is the health port every replica serves (plain HTTP, nothing but "ok"),
    # not the join API's TLS port, which only the leader serves.
    assert container["readinessProbe"]["httpGet"]["port"] == "health"
