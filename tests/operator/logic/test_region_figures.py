"""Per-Region figures for the metrics: capacity, reserved load, utilisation, late reports."""

from __future__ import annotations

from fixtures.placement_builders import NOW, add_pod, key, observe
from switchboard_operator.logic.capacity import CapacityModel, CapacityPicture
from switchboard_operator.logic.region_figures import region_figures

MODEL = CapacityModel()
FRESH = MODEL.report_freshness_seconds


def test_capacity_reserved_and_utilisation_of_a_region():
    picture = CapacityPicture(MODEL)
    state = add_pod(picture, "sfu-0", capacity=100.0)
    add_pod(picture, "sfu-1", capacity=100.0, region="us")
    picture.assign("ns/room", 25.0, pod=key("sfu-0"), pod_uid=state.uid, now=NOW)
    figures = region_figures(picture, ["eu", "us", "empty"], NOW)
    assert figures["eu"].capacity == 100.0
    assert figures["eu"].reserved == 25.0
    assert figures["eu"].utilization == 0.25
    assert figures["us"].reserved == 0.0
    assert figures["empty"].capacity == 0.0
    assert figures["empty"].utilization == 0.0


def test_a_pod_whose_reports_stopped_is_late_and_offers_no_capacity():
    picture = CapacityPicture(MODEL)
    add_pod(picture, "sfu-0")
    assert region_figures(picture, ["eu"], NOW + FRESH)["eu"].reports_late == 0
    later = region_figures(picture, ["eu"], NOW + FRESH + 1)["eu"]
    assert later.reports_late == 1
    assert later.capacity == 0.0


def test_a_starting_pod_is_late_only_once_its_start_up_grace_ran_out():
    picture = CapacityPicture(MODEL)
    picture.apply_pod(observe("sfu-0"), NOW)
    assert region_figures(picture, ["eu"], NOW + 1)["eu"].reports_late == 0
    grace = MODEL.startup_grace_seconds
    assert region_figures(picture, ["eu"], NOW + grace + 1)["eu"].reports_late == 1
