"""Drift: an object is unchanged while it still carries every field the operator wants."""

from switchboard_operator.logic.drift import drifted_paths, is_subset

DESIRED = {
    "metadata": {"name": "sfu", "labels": {"a": "1"}},
    "spec": {"ports": [{"name": "http", "port": 7880}], "replicas": 2, "enabled": True},
}


def test_server_defaults_and_foreign_fields_are_not_drift():
    observed = {
        "metadata": {"name": "sfu", "labels": {"a": "1", "b": "2"}, "uid": "x"},
        "spec": {
            "ports": [{"name": "http", "port": 7880, "protocol": "TCP"}],
            "replicas": 2,
            "enabled": True,
            "clusterIP": "10.0.0.1",
        },
    }
    assert is_subset(DESIRED, observed)
    assert drifted_paths(DESIRED, observed) == []


def test_edited_removed_and_extra_list_items_are_drift():
    edited = {**DESIRED, "spec": {**DESIRED["spec"], "replicas": 5}}
    assert not is_subset(DESIRED, edited)
    assert drifted_paths(DESIRED, edited) == [".spec.replicas"]

    no_label = {**DESIRED, "metadata": {"name": "sfu", "labels": {}}}
    assert drifted_paths(DESIRED, no_label) == [".metadata.labels.a"]

    extra_port = {
        **DESIRED,
        "spec": {**DESIRED["spec"], "ports": [*DESIRED["spec"]["ports"], {"port": 1}]},
    }
    assert drifted_paths(DESIRED, extra_port) == [".spec.ports"]


def test_numbers_compare_by_value_but_booleans_are_not_numbers():
    assert is_subset({"x": 1}, {"x": 1.0})
    assert not is_subset({"x": True}, {"x": 1})
    assert not is_subset({"x": "one"}, {"x": 1})


def test_quantities_compare_by_value_as_the_api_server_canonicalises_them():
    desired = {
        "resources": {"limits": {"cpu": "1000m", "memory": "1024Mi"}, "requests": {"cpu": 2}}
    }
    observed = {"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "2"}}}
    assert is_subset(desired, observed)
    assert not is_subset({"cpu": "500m"}, {"cpu": "1"})
    assert not is_subset({"image": "sfu:1"}, {"image": "sfu:1.0"})
