"""The operator's metrics: every registered family is exported, join API answers are counted
by status code, and the control plane's figures appear per Region at scrape time."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from fixtures.placement_builders import NOW, add_pod, key
from switchboard_api import metrics
from switchboard_operator.logic.capacity import CapacityPicture
from switchboard_operator.logic.region_figures import control_plane_figures
from switchboard_operator.metrics import OperatorMetrics


def _region(name: str, desired: int, draining: int = 0) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {"sfu": {"autoscaling": {"minReplicas": 1, "maxReplicas": 4}}},
        "status": {"sfu": {"desiredReplicas": desired, "drainingReplicas": draining}},
    }


def _pod(name: str, ready: bool, phase: str = "Running") -> dict:
    return {
        "metadata": {"name": name},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def _room(phase: str, region: str | None = None, wanted: str | None = None) -> dict:
    return {"spec": {"region": wanted}, "status": {"phase": phase, "region": region}}


def _families(exposition: bytes) -> dict:
    return {f.name: f for f in text_string_to_metric_families(exposition.decode())}


def test_every_registered_operator_family_is_exported_with_its_type():
    exported = OperatorMetrics()
    picture = CapacityPicture()
    exported.watch_figures(lambda: control_plane_figures({}, {}, [], picture, NOW))
    families = _families(exported.exposition())
    for spec in metrics.OPERATOR:
        assert spec.family in families, spec.name
        assert families[spec.family].type == str(spec.type), spec.name
    [build] = families["switchboard_build_info"].samples
    assert build.labels["component"] == "operator"
    assert families["switchboard_operator_leader"].samples[0].value == 0


def test_region_figures_rooms_by_phase_and_waiting_rooms():
    picture = CapacityPicture()
    state = add_pod(picture, "sfu-0", region="eu", capacity=100.0)
    picture.assign("ns/a", 40.0, pod=key("sfu-0"), pod_uid=state.uid, now=NOW)
    figures = control_plane_figures(
        regions={"eu": _region("eu", desired=2, draining=1)},
        sfu_pods={"eu": [_pod("sfu-0", True), _pod("sfu-1", False), _pod("old", False, "Failed")]},
        rooms=[
            _room("Scheduled", "eu"),
            _room("Running", "eu"),
            _room("Unschedulable", wanted="eu"),
            _room("Pending"),
        ],
        picture=picture,
        now=NOW,
    )
    exported = OperatorMetrics()
    exported.watch_figures(lambda: figures)
    registry = exported.registry
    eu = {"region": "eu"}

    def value(name: str, labels: dict[str, str] = eu) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("switchboard_region_capacity_units") == 100.0
    assert value("switchboard_region_reserved_units") == 40.0
    assert value("switchboard_region_utilization_ratio") == 0.4
    assert value("switchboard_region_sfu_pods_desired") == 2
    assert value("switchboard_region_sfu_pods_current") == 2  # the Failed pod is gone
    assert value("switchboard_region_sfu_pods_ready") == 1
    assert value("switchboard_region_sfu_pods_draining") == 1
    assert value("switchboard_region_sfu_pods_max") == 4
    assert value("switchboard_region_rooms_waiting") == 1
    assert value("switchboard_rooms", {"region": "eu", "phase": "Running"}) == 1
    assert value("switchboard_rooms", {"region": "", "phase": "Pending"}) == 1


def test_a_standby_exports_no_figures():
    exported = OperatorMetrics()
    exported.watch_figures(lambda: None)
    assert "switchboard_region_capacity_units" not in exported.exposition().decode()


def test_each_regions_event_counters_start_at_zero():
    """A counter first seen at 1 shows no increase: the first failover must be visible."""
    exported = OperatorMetrics()
    picture = CapacityPicture()
    figures = control_plane_figures({"eu": _region("eu", 1)}, {}, [], picture, NOW)
    exported.watch_figures(lambda: figures)
    exported.exposition()  # the scrape that first sees the Region
    registry = exported.registry
    lost = {"region": "eu", "reason": "PodDeleted"}
    assert registry.get_sample_value("switchboard_failovers_total", lost) == 0
    exported.pod_lost("eu", "PodDeleted", rooms=3)
    assert registry.get_sample_value("switchboard_failovers_total", lost) == 1
    assert registry.get_sample_value("switchboard_rooms_moved_total", lost) == 3


def test_a_deleted_regions_series_end_and_a_new_ones_start_at_zero():
    """A Region gone from the cluster leaves no series behind: its gauges would keep their
    last value (an alert on them would never resolve) and its counters would stay forever."""
    exported = OperatorMetrics()
    picture = CapacityPicture()
    regions = {"eu": _region("eu", 1), "us": _region("us", 1)}
    exported.watch_figures(lambda: control_plane_figures(regions, {}, [], picture, NOW))
    exported.exposition()
    exported.region_scale_down_held("eu", held=True)
    exported.pod_lost("eu", "PodDeleted", rooms=2)
    registry = exported.registry
    lost = {"region": "eu", "reason": "PodDeleted"}
    assert registry.get_sample_value("switchboard_region_scale_down_held", {"region": "eu"}) == 1

    del regions["eu"]
    exported.exposition()  # the scrape that first misses the Region
    exposition = exported.exposition().decode()
    assert 'region="eu"' not in exposition
    assert 'region="us"' in exposition

    regions["eu"] = _region("eu", 1)  # created again under the same name: a new Region
    exported.exposition()
    assert registry.get_sample_value("switchboard_failovers_total", lost) == 0
    assert registry.get_sample_value("switchboard_region_scale_down_held", {"region": "eu"}) == 0
