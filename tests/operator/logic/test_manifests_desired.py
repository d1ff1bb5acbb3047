"""Everything a Region produces besides its SFU pods, and the addresses clients are given."""

from __future__ import annotations

import pytest
from manifests_builders import REGION_UID, SECRETS, context, region

from switchboard_api import labels
from switchboard_operator.logic.manifests import (
    APPLY_ORDER,
    HOSTS_ROOMS,
    ManifestError,
    desired_objects,
    sfu_disruption_budget,
    sfu_headless_service,
    sfu_pod,
    sfu_public_url,
    sfu_signalling_service,
    turn_disruption_budget,
)


def _objects(region_=None, **kwargs):
    return desired_objects(region_ or region(), context(), turn_secrets=SECRETS, **kwargs)


def _names(objects):
    return [(o["kind"], o["metadata"]["name"]) for o in objects]


def test_a_region_with_turn_produces_its_objects_in_apply_order():
    assert _names(_objects()) == [
        ("ServiceAccount", "eu-west-sfu"),
        ("ServiceAccount", "eu-west-turn"),
        ("Secret", "eu-west-turn-secret"),
        ("Service", "eu-west-sfu-pods"),
        ("Service", "eu-west-sfu"),
        ("Service", "eu-west-turn"),
        ("Deployment", "eu-west-turn"),
        ("PodDisruptionBudget", "eu-west-sfu"),
        ("PodDisruptionBudget", "eu-west-turn"),
        ("NetworkPolicy", "eu-west-sfu"),
        ("NetworkPolicy", "eu-west-turn"),
    ]
    assert [o["kind"] for o in _objects()] == sorted(
        (o["kind"] for o in _objects()), key=APPLY_ORDER.index
    )


def test_without_turn_there_are_no_turn_objects_and_no_secret_is_needed():
    objects = desired_objects(region(turn={"enabled": False}), context())
    assert _names(objects) == [
        ("ServiceAccount", "eu-west-sfu"),
        ("Service", "eu-west-sfu-pods"),
        ("Service", "eu-west-sfu"),
        ("PodDisruptionBudget", "eu-west-sfu"),
        ("NetworkPolicy", "eu-west-sfu"),
    ]


def test_turn_needs_the_secrets_it_will_keep():
    with pytest.raises(ValueError, match="TURN secrets"):
        desired_objects(region(), context())


def test_building_twice_gives_identical_objects():
    assert _objects() == _objects()


def test_every_object_is_owned_labelled_and_in_the_target_namespace():
    for manifest in _objects():
        meta = manifest["metadata"]
        assert meta["namespace"] == "media-eu"
        (owner,) = meta["ownerReferences"]
        assert owner["uid"] == REGION_UID
        assert owner["controller"] is True
        assert owner["blockOwnerDeletion"] is True
        assert meta["labels"][labels.REGION] == "eu-west"
        assert meta["labels"][labels.APP_MANAGED_BY] == "switchboard-operator"
        assert meta["labels"][labels.APP_COMPONENT] in {"sfu", "turn"}


def test_regions_sharing_a_namespace_do_not_collide():
    first = _names(_objects(region("eu-west", namespace="media")))
    second = _names(_objects(region("eu-north", namespace="media")))
    assert not set(first) & set(second)


def test_service_accounts_mount_no_api_token():
    for manifest in _objects():
        if manifest["kind"] == "ServiceAccount":
            assert manifest["automountServiceAccountToken"] is False


def test_problems_surface_before_any_pod_is_attempted():
    with pytest.raises(ManifestError) as caught:
        desired_objects(
            region(sfu={"image": " "}), context(default_sfu_image=""), turn_secrets=SECRETS
        )
    assert caught.value.reason == "ImageUnset"
    with pytest.raises(ManifestError) as caught:
        _objects(region(sfu={"publicURLTemplate": "wss://{pod}.{zone}.example.com"}))
    assert caught.value.reason == "InvalidPublicURLTemplate"


def test_headless_service_publishes_every_sfu_pod_even_while_draining():
    service = sfu_headless_service(region())
    spec = service["spec"]
    assert spec["clusterIP"] == "None"
    assert spec["publishNotReadyAddresses"] is True
    pod_labels = sfu_pod(region(), context(), "abcde")["metadata"]["labels"]
    assert spec["selector"].items() <= pod_labels.items()


def test_signalling_service_targets_the_named_signalling_port():
    spec = sfu_signalling_service(region())["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["ports"] == [
        {"name": "signalling", "port": 7880, "targetPort": "signalling", "protocol": "TCP"}
    ]


def test_sfu_budget_protects_exactly_the_pods_that_host_rooms():
    budget = sfu_disruption_budget(region())["spec"]
    assert budget["maxUnavailable"] == 0
    selector = budget["selector"]["matchLabels"]
    pod_labels = sfu_pod(region(), context(), "abcde")["metadata"]["labels"]
    assert not selector.items() <= pod_labels.items(), "an empty pod must stay evictable"
    assert selector.items() <= {**pod_labels, HOSTS_ROOMS: "true"}.items()
    # A draining pod is unready but still hosts rooms: unready is no licence to evict.
    assert budget["unhealthyPodEvictionPolicy"] == "IfHealthyBudget"


def test_turn_budget_lets_one_pod_go_at_a_time():
    budget = turn_disruption_budget(region())["spec"]
    assert budget["maxUnavailable"] == 1


# -- public signalling URLs ------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (None, "http://10.244.1.7:7880"),
        ("wss://{pod}.{region}.media.example.com", "wss://eu-west-sfu-x7k2q.eu-west.media.example.com"),
        ("https://sfu.example.com/{namespace}/{pod}", "https://sfu.example.com/media-eu/eu-west-sfu-x7k2q"),
        ("ws://{podIP}:{port}/rtc", "ws://10.244.1.7:7880/rtc"),
    ],
)  # fmt: skip
def test_public_url_renders_the_template(template, expected):
    reg = region(sfu={"publicURLTemplate": template} if template else {})
    assert sfu_public_url(reg, "eu-west-sfu-x7k2q", "10.244.1.7") == expected


def test_public_url_of_a_tls_region_defaults_to_https():
    reg = region(sfu={"tlsSecretName": "sfu-tls"})
    assert sfu_public_url(reg, "eu-west-sfu-x7k2q", "10.244.1.7") == "https://10.244.1.7:7880"


def test_public_url_brackets_ipv6_pod_addresses():
    assert sfu_public_url(region(), "eu-west-sfu-x7k2q", "fd00::7") == "http://[fd00::7]:7880"


def test_public_url_waits_for_the_pod_ip_only_when_it_needs_it():
    assert sfu_public_url(region(), "eu-west-sfu-x7k2q", None) is None
    named = region(sfu={"publicURLTemplate": "wss://{pod}.example.com"})
    assert sfu_public_url(named, "eu-west-sfu-x7k2q", None) == "wss://eu-west-sfu-x7k2q.example.com"


@pytest.mark.parametrize(
    ("template", "complaint"),
    [
        ("wss://{pod}.{zone}.example.com", "unknown placeholder {zone}"),
        ("wss://{pod!r}.example.com", "unknown placeholder {pod!r}"),
        ("wss://{pod:>9}.example.com", "unknown placeholder {pod:>9}"),
        ("wss://{pod.example.com", "not a valid template"),
        ("wss://{0}.example.com", "unknown placeholder {0}"),
        ("wss://:{port}/", "not a ws/wss/http/https URL with a host"),
    ],
)
def test_bad_templates_say_what_is_wrong(template, complaint):
    reg = region(sfu={"publicURLTemplate": template})
    with pytest.raises(ManifestError) as caught:
        sfu_public_url(reg, "eu-west-sfu-x7k2q", "10.244.1.7")
    assert complaint in caught.value.message
    assert caught.value.field == "spec.sfu.publicURLTemplate"


def test_an_unknown_placeholder_error_lists_the_known_ones():
    reg = region(sfu={"publicURLTemplate": "wss://{pod}.{zone}.example.com"})
    with pytest.raises(ManifestError) as caught:
        sfu_public_url(reg, "eu-west-sfu-x7k2q", "10.244.1.7")
    assert "use {pod}, {podIP}, {namespace}, {region}, {port}" in caught.value.message
