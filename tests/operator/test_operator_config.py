"""The operator's configuration from its environment: addresses default to its own Service."""

from __future__ import annotations

from switchboard_api.contract import REPORT_PATH
from switchboard_operator.config import OperatorConfig


def test_without_settings_sfu_pods_and_clients_are_pointed_at_the_operator_service():
    config = OperatorConfig.from_env({"POD_NAMESPACE": "sb", "SWITCHBOARD_LISTEN_PORT": "9000"})
    assert config.report_url == f"http://switchboard-operator.sb.svc:9000{REPORT_PATH}"
    assert config.join_api_public_url == "http://switchboard-operator.sb.svc:9000"


def test_join_api_public_url_is_the_one_clients_reach():
    config = OperatorConfig.from_env(
        {"SWITCHBOARD_JOIN_API_PUBLIC_URL": "https://rtc.example.com/switchboard"}
    )
    assert config.join_api_public_url == "https://rtc.example.com/switchboard"


def test_region_namespaces_are_the_charts_comma_separated_list():
    assert OperatorConfig.from_env({}).region_namespaces == frozenset()
    config = OperatorConfig.from_env({"SWITCHBOARD_REGION_NAMESPACES": "media-eu, media-us,"})
    assert config.region_namespaces == {"media-eu", "media-us"}
