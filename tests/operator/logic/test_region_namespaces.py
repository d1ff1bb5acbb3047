"""A Region may use only the namespaces of the chart's regionNamespaces, when there are any."""

from __future__ import annotations

from switchboard_operator.logic.region_namespaces import NAMESPACE_NOT_ALLOWED, namespace_refusal


def test_without_a_list_every_namespace_is_allowed():
    assert namespace_refusal("anything", frozenset()) is None


def test_a_listed_namespace_is_allowed():
    assert namespace_refusal("media-eu", frozenset({"media-eu", "media-us"})) is None


def test_another_namespace_is_refused_naming_the_allowed_ones():
    problem = namespace_refusal("kube-system", frozenset({"media-us", "media-eu"}))
    assert problem is not None and problem.reason == NAMESPACE_NOT_ALLOWED
    assert "'kube-system'" in problem.message
    assert "media-eu, media-us" in problem.message
