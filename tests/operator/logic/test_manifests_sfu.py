"""SFU pods as the operator creates them: identity, placement, probes, drain, the contract
environment the SFU reads, and a template hash that changes exactly when pods must roll."""

from __future__ import annotations

import posixpath

import pytest
from manifests_builders import (
    JOIN_API_URL,
    REGION_UID,
    REPORT_URL,
    container,
    context,
    env_of,
    region,
)

from switchboard_api import labels
from switchboard_api.contract import (
    REPORT_TOKEN_AUDIENCE,
    ReportTls,
    SfuEnv,
    SfuMounts,
    join_url,
)
from switchboard_operator.logic.manifests import (
    POD_TEMPLATE_HASH,
    ManifestError,
    pod_template_hash,
    sfu_headless_service,
    sfu_pod,
    turn_uris,
)
from switchboard_sfu.config import SfuConfig

POD_IP = "10.244.1.7"
HOST_IP = "192.0.2.10"


HTTPS_REPORT_URL = "https://switchboard-operator-reports.sb.svc:8444/v1/capacity/reports"


def _pod(region_=None, ctx=None, suffix="x7k2q", **kwargs):
    return sfu_pod(region_ or region(), ctx or context(), suffix, **kwargs)


def _resolve_env(pod: dict) -> dict[str, str]:
    """The SFU's environment as the kubelet would build it (downward API filled in)."""
    fields = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.uid": "3c9a1f60-1111-4222-8333-944455556666",
        "status.podIP": HOST_IP if pod["spec"].get("hostNetwork") else POD_IP,
        "status.hostIP": HOST_IP,
    }
    env = {}
    for name, entry in env_of(container(pod["spec"], "sfu")).items():
        if "value" in entry:
            env[name] = entry["value"]
        else:
            env[name] = fields[entry["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def test_pod_is_named_after_region_and_suffix_and_addressable_through_the_headless_service():
    pod = _pod(suffix="x7k2q")
    assert pod["metadata"]["name"] == "eu-west-sfu-x7k2q"
    assert pod["metadata"]["namespace"] == "media-eu"
    assert pod["spec"]["hostname"] == "eu-west-sfu-x7k2q"
    assert pod["spec"]["subdomain"] == sfu_headless_service(region())["metadata"]["name"]


def test_pod_is_owned_by_its_region_and_carries_recommended_labels():
    pod = _pod()
    assert pod["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "switchboard.dev/v1alpha1",
            "kind": "Region",
            "name": "eu-west",
            "uid": REGION_UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    pod_labels = pod["metadata"]["labels"]
    assert pod_labels[labels.REGION] == "eu-west"
    assert pod_labels[labels.APP_COMPONENT] == "sfu"
    assert pod_labels[labels.APP_PART_OF] == "switchboard"
    assert pod_labels[labels.APP_MANAGED_BY] == "switchboard-operator"
    assert pod_labels[labels.APP_INSTANCE] == "eu-west"


@pytest.mark.parametrize("suffix", ["abcd", "abcdef", "ABCDE", "ab-de"])
def test_suffix_must_be_five_lowercase_alphanumerics(suffix):
    with pytest.raises(ValueError, match="suffix"):
        _pod(suffix=suffix)


def test_runs_the_region_image_with_its_resources():
    resources = {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "1"}}
    pod = _pod(region(sfu={"image": "registry.example/sfu:2.1", "resources": resources}))
    sfu = container(pod["spec"], "sfu")
    assert sfu["image"] == "registry.example/sfu:2.1"
    assert sfu["command"] == ["switchboard-sfu"]
    assert sfu["resources"] == resources


def test_blank_image_falls_back_to_the_operator_default_and_fails_clearly_without_one():
    blank = region(sfu={"image": " "})
    pod = _pod(blank, context(default_sfu_image="registry.example/sfu:default"))
    assert container(pod["spec"], "sfu")["image"] == "registry.example/sfu:default"
    with pytest.raises(ManifestError) as caught:
        _pod(blank, context(default_sfu_image=""))
    assert caught.value.reason == "ImageUnset"
    assert "spec.sfu.image" in str(caught.value)


def test_lands_on_the_region_nodes_and_spreads_across_zones():
    pod = _pod(region(topologyRegion="eu-west-1", nodeSelector={"media": "yes"}))
    assert pod["spec"]["nodeSelector"] == {
        "topology.kubernetes.io/region": "eu-west-1",
        "media": "yes",
    }
    (spread,) = pod["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert spread["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()


def test_topology_region_defaults_to_the_region_name():
    assert _pod()["spec"]["nodeSelector"] == {"topology.kubernetes.io/region": "eu-west"}


def test_node_selector_contradicting_the_topology_region_is_refused():
    with pytest.raises(ManifestError) as caught:
        _pod(region(nodeSelector={"topology.kubernetes.io/region": "us-east"}))
    assert caught.value.field == "spec.nodeSelector"


def test_probes_hit_the_sfu_health_endpoints_on_the_signalling_port():
    sfu = container(_pod()["spec"], "sfu")
    port, peer, metrics = sfu["ports"]
    assert port == {"name": "signalling", "containerPort": 7880, "protocol": "TCP"}
    # The peer port answers lease checks from the Region's other SFU pods only.
    assert peer == {"name": "peer", "containerPort": 7881, "protocol": "TCP"}
    assert _resolve_env(_pod())[SfuEnv.PEER_PORT] == "7881"
    # Metrics live on their own internal port, the one the PodMonitor selects by name.
    assert metrics == {"name": "metrics", "containerPort": 9880, "protocol": "TCP"}
    assert sfu["readinessProbe"]["httpGet"] == {
        "path": "/readyz",
        "port": "signalling",
        "scheme": "HTTP",
    }
    assert sfu["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert sfu["livenessProbe"]["httpGet"]["port"] == "signalling"


def test_drain_has_the_whole_grace_period_after_sigterm():
    pod = _pod(region(sfu={"autoscaling": {"drainGraceSeconds": 120}}))
    assert pod["spec"]["terminationGracePeriodSeconds"] > 120
    # Drain starts on SIGTERM: a preStop hook would eat into the grace period.
    assert "lifecycle" not in container(pod["spec"], "sfu")
    assert _resolve_env(pod)[SfuEnv.DRAIN_GRACE_SECONDS] == "120"


def test_a_crashed_sfu_is_replaced_not_restarted_in_place():
    assert _pod()["spec"]["restartPolicy"] == "Never"


def test_prometheus_scrapes_the_metrics_endpoint():
    annotations = _pod()["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9880",
        "prometheus.io/path": "/metrics",
    }


def test_pod_ip_mode_announces_the_pod_ip_and_stays_on_the_pod_network():
    pod = _pod()
    env = env_of(container(pod["spec"], "sfu"))
    assert env[SfuEnv.ANNOUNCE_ADDRESS]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert "hostNetwork" not in pod["spec"]
    assert "affinity" not in pod["spec"]


def test_host_network_mode_announces_the_node_ip_with_one_sfu_per_node():
    pod = _pod(region(sfu={"mediaExposure": "HostNetwork"}))
    spec = pod["spec"]
    sfu = container(spec, "sfu")
    env = env_of(sfu)
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert env[SfuEnv.ANNOUNCE_ADDRESS]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    assert env[SfuEnv.LISTEN_HOST]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert sfu["ports"][0]["hostPort"] == 7880
    assert "hostPort" not in sfu["ports"][2]  # metrics stay off the node's address
    (term,) = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()


@pytest.mark.parametrize("exposure", ["PodIP", "HostNetwork"])
def test_the_sfu_accepts_the_environment_it_is_given(exposure):
    """The contract from both sides: the SFU's own config reader takes the pod's env."""
    reg = region(sfu={"mediaExposure": exposure, "capacityPerPod": 42.5})
    uris = turn_uris(reg, "turn.example.com")
    pod = _pod(reg, turn_uris=uris)
    config = SfuConfig.from_env(_resolve_env(pod))
    assert config.region == "eu-west"
    assert config.pod_name == pod["metadata"]["name"]
    assert config.pod_namespace == "media-eu"
    assert config.announce_address == (HOST_IP if exposure == "HostNetwork" else POD_IP)
    assert config.capacity == 42.5
    assert config.metrics_port == 9880
    assert config.report_url == REPORT_URL
    assert config.join_api_url == JOIN_API_URL
    assert config.turn_uris == tuple(uris)
    assert str(config.turn_secret_file) == SfuMounts.TURN_SECRET_FILE
    assert str(config.report_token_file) == SfuMounts.REPORT_TOKEN_FILE
    assert str(config.join_keys_dir) == SfuMounts.JOIN_KEYS_DIR


def test_every_contract_variable_is_set_once():
    reg = region(sfu={"tlsSecretName": "sfu-tls"})
    ctx = context(report_url=HTTPS_REPORT_URL, report_ca_configmap=ReportTls.CA_CONFIGMAP)
    pod = _pod(reg, ctx, turn_uris=["turn:turn.example.com:3478"])
    env = env_of(container(pod["spec"], "sfu"))
    assert set(env) == {name.value for name in SfuEnv}


def test_reports_over_https_are_verified_with_the_published_ca_alone():
    ctx = context(report_url=HTTPS_REPORT_URL, report_ca_configmap="report-ca-copy")
    pod = _pod(ctx=ctx)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["report-ca"] == {"name": "report-ca", "configMap": {"name": "report-ca-copy"}}
    mount = _mount_of(pod, "report-ca")
    assert mount["readOnly"] is True
    assert "subPath" not in mount  # a republished CA reaches the pod
    config = SfuConfig.from_env(_resolve_env(pod))
    assert config.report_url == HTTPS_REPORT_URL
    assert str(config.report_ca_file) == SfuMounts.REPORT_CA_FILE
    assert posixpath.dirname(SfuMounts.REPORT_CA_FILE) == mount["mountPath"]


@pytest.mark.parametrize(
    "ctx",
    [
        {"report_url": REPORT_URL, "report_ca_configmap": "report-ca"},  # plain HTTP
        {"report_url": HTTPS_REPORT_URL, "report_ca_configmap": None},  # trust store
    ],
)
def test_without_a_ca_to_verify_with_the_pod_mounts_none(ctx):
    pod = _pod(ctx=context(**ctx))
    assert SfuEnv.REPORT_CA_FILE not in env_of(container(pod["spec"], "sfu"))
    assert "report-ca" not in {v["name"] for v in pod["spec"]["volumes"]}


def test_sfu_names_the_join_api_it_is_given_in_migrate_messages():
    pod = _pod(ctx=context(join_api_url="https://rtc.example.com/"))
    config = SfuConfig.from_env(_resolve_env(pod))
    assert join_url(config.join_api_url, "team-a/standup") == (
        "https://rtc.example.com/v1/namespaces/team-a/rooms/standup/join"
    )


def test_without_a_join_api_url_the_pod_is_told_none():
    pod = _pod(ctx=context(join_api_url=None))
    assert SfuEnv.JOIN_API_PUBLIC_URL not in env_of(container(pod["spec"], "sfu"))
    assert SfuConfig.from_env(_resolve_env(pod)).join_api_url is None


@pytest.mark.parametrize(
    "url", ["rtc.example.com", "ftp://rtc.example.com", "https://rtc.example.com/?x=1"]
)
def test_join_api_url_must_be_an_http_base_url(url):
    with pytest.raises(ValueError, match="join API URL"):
        context(join_api_url=url)


def test_without_turn_the_pod_neither_gets_turn_settings_nor_mounts_the_secret():
    pod = _pod(region(turn={"enabled": False}))
    env = env_of(container(pod["spec"], "sfu"))
    assert not {
        SfuEnv.TURN_URIS,
        SfuEnv.TURN_SECRET_FILE,
        SfuEnv.TURN_CREDENTIAL_TTL_SECONDS,
    } & set(env)
    assert all("secret" not in volume for volume in pod["spec"]["volumes"])


def test_report_token_is_a_short_lived_projected_token_for_the_capacity_audience():
    pod = _pod(ctx=context(report_token_expiration_seconds=900))
    (volume,) = [v for v in pod["spec"]["volumes"] if "projected" in v]
    (source,) = volume["projected"]["sources"]
    token = source["serviceAccountToken"]
    assert token["audience"] == REPORT_TOKEN_AUDIENCE
    assert token["expirationSeconds"] == 900
    mount = _mount_of(pod, volume["name"])
    assert posixpath.join(mount["mountPath"], token["path"]) == SfuMounts.REPORT_TOKEN_FILE
    # No API token: the projected one is all the SFU needs.
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["serviceAccountName"] == "eu-west-sfu"


def test_join_keys_and_only_the_minting_turn_secret_are_mounted_read_only():
    pod = _pod(ctx=context(join_public_keys_configmap="join-keys-copy"))
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    (keys,) = [v for v in volumes.values() if "configMap" in v]
    assert keys["configMap"]["name"] == "join-keys-copy"
    assert _mount_of(pod, keys["name"]) == {
        "name": keys["name"],
        "mountPath": SfuMounts.JOIN_KEYS_DIR,
        "readOnly": True,
    }
    (turn,) = [v for v in volumes.values() if "secret" in v]
    assert turn["secret"]["secretName"] == "eu-west-turn-secret"
    (item,) = turn["secret"]["items"]
    mount = _mount_of(pod, turn["name"])
    assert mount["readOnly"] is True
    assert posixpath.join(mount["mountPath"], item["path"]) == SfuMounts.TURN_SECRET_FILE


def test_files_named_in_the_environment_are_on_mounted_volumes():
    pod = _pod()
    mounts = [m["mountPath"] for m in container(pod["spec"], "sfu")["volumeMounts"]]
    env = _resolve_env(pod)
    for name in (SfuEnv.REPORT_TOKEN_FILE, SfuEnv.TURN_SECRET_FILE, SfuEnv.JOIN_KEYS_DIR):
        assert any(env[name].startswith(mount) for mount in mounts), name


def test_pod_meets_the_restricted_pod_security_profile():
    spec = _pod()["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(spec, "sfu")["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    # A read-only root still needs a scratch directory.
    tmp = _mount_of(_pod(), "tmp")
    assert tmp["mountPath"] == "/tmp"


def test_template_hash_labels_the_pod_and_ignores_the_pod_name():
    reg, ctx = region(), context()
    first, second = _pod(reg, ctx, "aaaaa"), _pod(reg, ctx, "bbbbb")
    assert first["metadata"]["labels"][POD_TEMPLATE_HASH] == pod_template_hash(reg, ctx)
    assert first["metadata"]["labels"] == second["metadata"]["labels"]


def test_template_hash_changes_with_the_image_but_not_with_scaling():
    ctx = context()
    base = pod_template_hash(region(), ctx)
    assert pod_template_hash(region(sfu={"image": "registry.example/sfu:9"}), ctx) != base
    scaled = region(sfu={"minReplicas": 3, "maxReplicas": 9, "highWaterMark": 0.9})
    assert pod_template_hash(scaled, ctx) == base


def test_template_hash_changes_with_what_the_pods_are_told():
    ctx = context()
    base = pod_template_hash(region(), ctx)
    assert pod_template_hash(region(sfu={"capacityPerPod": 50}), ctx) != base
    assert pod_template_hash(region(), ctx, turn_uris=["turn:t.example.com:3478"]) != base
    assert pod_template_hash(region(), context(join_api_url="https://new.example.com")) != base


@pytest.mark.parametrize(
    ("name", "problem"),
    [("a" * 54, "longer than 53"), ("1region", "must start with a letter")],
)
def test_region_names_that_cannot_name_pods_or_services_are_refused(name, problem):
    with pytest.raises(ManifestError, match=problem) as caught:
        _pod(region(name))
    assert caught.value.reason == "InvalidRegionName"


def _mount_of(pod: dict, volume: str) -> dict:
    (mount,) = [m for m in container(pod["spec"], "sfu")["volumeMounts"] if m["name"] == volume]
    return mount


def test_a_region_tls_secret_is_mounted_whole_and_served_over_https_only():
    reg = region(sfu={"tlsSecretName": "sfu-wildcard", "publicURLTemplate": "wss://{pod}.sfu.io"})
    pod = _pod(reg)
    spec = pod["spec"]
    sfu = container(spec, "sfu")
    volume = next(v for v in spec["volumes"] if v.get("secret", {}).get("secretName"))
    assert volume["secret"]["secretName"] == "sfu-wildcard"
    mount = next(m for m in sfu["volumeMounts"] if m["name"] == volume["name"])
    # A subPath mount would never see the kubelet's updates of a renewed certificate.
    assert "subPath" not in mount
    assert mount["mountPath"] == SfuMounts.TLS_DIR
    config = SfuConfig.from_env(_resolve_env(pod))
    assert config.tls is not None
    assert str(config.tls.cert) == SfuMounts.TLS_CERT_FILE
    assert posixpath.dirname(str(config.tls.key)) == mount["mountPath"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert sfu[probe]["httpGet"]["scheme"] == "HTTPS"
    # Metrics stay plain HTTP on their internal port (cluster-only by NetworkPolicy).
    assert "prometheus.io/scheme" not in pod["metadata"]["annotations"]
    # Turning TLS on or renaming its Secret rolls the pods.
    assert pod_template_hash(reg, context()) != pod_template_hash(region(), context())


def test_without_tls_the_pod_serves_plain_http():
    pod = _pod()
    sfu = container(pod["spec"], "sfu")
    assert SfuEnv.TLS_CERT_FILE.value not in env_of(sfu)
    assert sfu["readinessProbe"]["httpGet"]["scheme"] == "HTTP"
    assert SfuConfig.from_env(_resolve_env(pod)).tls is None
