"""The operator's configuration from its environment: addresses default to its own Service."""

from __future__ import annotations

import pytest

from switchboard_api.contract import REPORT_PATH
from switchboard_operator.config import OperatorConfig, OperatorConfigError


def test_without_settings_sfu_pods_and_clients_are_pointed_at_the_operator_services():
    config = OperatorConfig.from_env({"POD_NAMESPACE": "sb", "SWITCHBOARD_LISTEN_PORT": "9000"})
    # Reports go to the internal Service and port, always over HTTPS; joins to the public.
    assert config.report_url == f"https://switchboard-operator-reports.sb.svc:8444{REPORT_PATH}"
    assert config.report_port == 8444
    assert config.join_api_public_url == "http://switchboard-operator.sb.svc:9000"


def test_join_api_public_url_is_the_one_clients_reach():
    config = OperatorConfig.from_env(
        {"SWITCHBOARD_JOIN_API_PUBLIC_URL": "https://rtc.example.com/switchboard"}
    )
    assert config.join_api_public_url == "https://rtc.example.com/switchboard"


def test_sfu_pods_are_never_told_to_report_in_plain_http():
    with pytest.raises(OperatorConfigError, match="SWITCHBOARD_REPORT_URL must be an https URL"):
        OperatorConfig.from_env({"SWITCHBOARD_REPORT_URL": "http://cp:8444/v1/capacity/reports"})


def test_region_namespaces_are_the_charts_comma_separated_list():
    assert OperatorConfig.from_env({}).region_namespaces == frozenset()
    config = OperatorConfig.from_env({"SWITCHBOARD_REGION_NAMESPACES": "media-eu, media-us,"})
    assert config.region_namespaces == {"media-eu", "media-us"}


def test_reservation_hold_defaults_to_the_capacity_models_and_can_be_set():
    assert OperatorConfig.from_env({}).reservation_hold_seconds == 60.0
    config = OperatorConfig.from_env({"SWITCHBOARD_RESERVATION_HOLD_SECONDS": "12.5"})
    assert config.reservation_hold_seconds == 12.5
    # Placement counts a room placed 20 s ago as mature under that hold, young by default.
    reservation, measured = 2.0, 0.5
    assert config.capacity_model().effective(reservation, measured, age=20) < reservation
    assert OperatorConfig.from_env({}).capacity_model().effective(reservation, measured, 20) == 2


@pytest.mark.parametrize("raw", ["-1", "nan", "soon"])
def test_a_reservation_hold_that_is_no_duration_is_refused(raw):
    with pytest.raises(OperatorConfigError, match="SWITCHBOARD_RESERVATION_HOLD_SECONDS"):
        OperatorConfig.from_env({"SWITCHBOARD_RESERVATION_HOLD_SECONDS": raw})
