"""The metric registry: one declaration per name, Prometheus conventions, docs in step."""

import re

import pytest

from switchboard_api import metrics, metrics_doc

ALL = {*metrics.OPERATOR, *metrics.SFU}
NAME = re.compile(r"^switchboard_[a-z0-9_]+$")


def test_the_reference_document_is_current():
    document = metrics_doc.METRICS_DOC.read_text()
    assert metrics_doc.with_fresh_tables(document) == document, (
        "docs/metrics.md is stale; run `python -m switchboard_api.metrics_doc`"
    )


def test_every_name_is_declared_once():
    names = [spec.name for spec in ALL]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("spec", sorted(ALL, key=lambda s: s.name), ids=lambda s: s.name)
def test_names_follow_prometheus_conventions(spec):
    assert NAME.match(spec.name)
    assert spec.name.endswith("_total") == (spec.type is metrics.MetricType.COUNTER)
    assert not spec.name.endswith(("_milliseconds", "_ms", "_percent", "_count", "_sum"))
    assert bool(spec.buckets) == (spec.type is metrics.MetricType.HISTOGRAM)
    assert list(spec.buckets) == sorted(spec.buckets)
    # The scrape's own target labels are never metric labels.
    assert not {"pod", "namespace", "job", "instance"} & set(spec.labels)
    assert spec.help.strip()


def test_sfu_metrics_carry_no_region_label_of_their_own():
    """`region` comes from the PodMonitor (the pod's label), once, for every SFU series."""
    assert all(metrics.REGION not in spec.labels for spec in metrics.SFU)
