"""The operator's RBAC as the chart binds it: the permission table of docs/security.md is
exactly the chart's rules, `regionNamespaces` moves the Regions' writes from a cluster-wide
binding to one RoleBinding per listed namespace, and the operator is told the same list."""

from __future__ import annotations

import json
import subprocess

import pytest
from chart_render import NAMESPACE, one, pod_spec, render

from fixtures.rbac import (
    Permission,
    Use,
    compare,
    documented,
    permissions,
    scopes,
    uses,
)
from switchboard_dev.helm import helm_binary
from switchboard_dev.paths import CHART_DIR, OPERATOR_RBAC, REPO_ROOT
from switchboard_operator.config import OperatorConfig

REGIONS_ROLE = "switchboard-operator-regions"


@pytest.fixture(scope="module")
def helm():
    return str(helm_binary(build=True))


def test_the_documented_permission_table_is_the_charts_rules():
    table = documented((REPO_ROOT / "docs" / "security.md").read_text())
    rules = {p.key() for p in permissions(OPERATOR_RBAC)}
    assert set(table) - rules == set(), "documented but not granted"
    assert rules - set(table) == set(), "granted but not documented"
    assert all(flow for flow in table.values())


def test_no_rule_grants_update_where_the_operator_patches():
    """The operator writes with server-side apply and merge patches; only the Lease's
    compare-and-swap is an update."""
    updates = [p for p in permissions(OPERATOR_RBAC) if p.verb == "update"]
    assert [(p.resource, p.name) for p in updates] == [("leases", "switchboard-operator")]
    assert not [p for p in permissions(OPERATOR_RBAC) if p.resource == "*" or p.verb == "*"]


def test_by_default_the_regions_role_is_bound_cluster_wide(helm):
    docs = render(helm)
    binding = one(docs, "ClusterRoleBinding", REGIONS_ROLE)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": REGIONS_ROLE,
    }
    assert binding["subjects"][0]["name"] == pod_spec(docs)["serviceAccountName"]
    assert not [
        d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"] == REGIONS_ROLE
    ]
    env = {e["name"]: e.get("value") for e in pod_spec(docs)["containers"][0]["env"]}
    assert "SWITCHBOARD_REGION_NAMESPACES" not in env


def test_region_namespaces_bind_the_regions_role_in_each_and_tell_the_operator(helm):
    docs = render(helm, "--set", "regionNamespaces={media-eu,media-us}")
    bindings = [
        d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"] == REGIONS_ROLE
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["media-eu", "media-us"]
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "ClusterRole"
        assert binding["roleRef"]["name"] == REGIONS_ROLE
        (subject,) = binding["subjects"]
        assert (subject["kind"], subject["namespace"]) == ("ServiceAccount", NAMESPACE)
    assert not [
        d
        for d in docs
        if d["kind"] == "ClusterRoleBinding" and d["metadata"]["name"] == REGIONS_ROLE
    ]
    env = {e["name"]: e.get("value") for e in pod_spec(docs)["containers"][0]["env"]}
    config = OperatorConfig.from_env({k: v for k, v in env.items() if v is not None})
    assert config.region_namespaces == {"media-eu", "media-us"}


def test_region_namespaces_must_be_namespace_names(helm):
    result = subprocess.run(
        [helm, "template", "sb", str(CHART_DIR), "--set", "regionNamespaces={Not_A_Name}"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "regionNamespaces" in result.stderr


# The comparison itself, on requests written as the API server's audit log writes them.

ROLE = "Role/r"


def audit_line(verb: str, resource: str, code: int = 200, **ref: str) -> bytes:
    return json.dumps(
        {
            "auditID": f"{verb}-{resource}-{ref}-{code}",
            "user": {"username": "op"},
            "verb": verb,
            "objectRef": {"resource": resource, **ref},
            "responseStatus": {"code": code},
        }
    ).encode()


def test_a_named_grant_is_used_only_by_its_name_and_apply_that_creates_needs_create():
    granted = [
        Permission(ROLE, "", "secrets", "get", "signing"),
        Permission(ROLE, "", "secrets", "create"),
        Permission(ROLE, "", "configmaps", "patch"),
        Permission(ROLE, "", "configmaps", "create"),
    ]
    log = b"\n".join(
        [
            audit_line("get", "secrets", name="other", namespace="ns"),
            audit_line("patch", "configmaps", 201, name="keys", namespace="ns"),
            audit_line("list", "pods", 403, namespace="ns"),
        ]
    )
    result = compare(granted, uses(log, "op"), {ROLE: ["ns"]})
    assert result.unused == [granted[0], granted[1]]
    assert {(u.resource, u.verb) for u in result.ungranted} == {
        ("secrets", "get"),
        ("pods", "list"),
    }
    assert [u.code for u in result.forbidden] == [403]


def test_a_grant_counts_only_in_the_namespaces_it_is_bound_in():
    granted = [Permission(ROLE, "", "pods", "patch")]
    made = [Use("", "pods", "patch", "p", "elsewhere", 200)]
    result = compare(granted, made, {ROLE: ["ns"]})
    assert result.unused == granted and result.ungranted == made
    assert not compare(granted, made, {ROLE: None}).unused


def test_scopes_are_where_the_bindings_bind_each_role_to_the_user():
    def binding(kind: str, role: str, user: str, namespace: str | None = None) -> dict:
        meta = {"name": "b"} | ({"namespace": namespace} if namespace else {})
        role_kind, role_name = role.split("/")
        return {
            "kind": kind,
            "metadata": meta,
            "roleRef": {"kind": role_kind, "name": role_name},
            "subjects": [{"kind": "User", "name": user}],
        }

    bound = scopes(
        [
            binding("ClusterRoleBinding", "ClusterRole/main", "op"),
            binding("RoleBinding", "ClusterRole/regions", "op", "b-ns"),
            binding("RoleBinding", "ClusterRole/regions", "op", "a-ns"),
            binding("RoleBinding", "Role/own", "op", "own-ns"),
            binding("ClusterRoleBinding", "ClusterRole/other", "someone-else"),
        ],
        "op",
    )
    assert bound == {
        "ClusterRole/main": None,
        "ClusterRole/regions": ["a-ns", "b-ns"],
        "Role/own": ["own-ns"],
    }
