"""The SFU reads its environment strictly: required values, types and the contract's
report-interval ceiling, with errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard_api.contract import SfuEnv
from switchboard_api.ports import SFU_SIGNALLING_PORT
from switchboard_sfu.config import ConfigError, SfuConfig

MINIMAL = {
    SfuEnv.REGION: "eu",
    SfuEnv.POD_NAME: "sfu-0",
    SfuEnv.POD_NAMESPACE: "media",
    SfuEnv.POD_UID: "uid-1",
    SfuEnv.ANNOUNCE_ADDRESS: "10.0.0.7",
    SfuEnv.JOIN_KEYS_DIR: "/etc/switchboard/join-keys",
}


def test_minimal_environment_runs_stand_alone_with_defaults() -> None:
    config = SfuConfig.from_env(MINIMAL)

    assert config.signalling_port == SFU_SIGNALLING_PORT
    assert config.report_url is None
    assert config.join_api_url is None
    assert config.join_keys_dir == Path("/etc/switchboard/join-keys")
    assert config.turn_uris == ()


def test_full_environment() -> None:
    config = SfuConfig.from_env(
        {
            **MINIMAL,
            SfuEnv.SIGNALLING_PORT: "9000",
            SfuEnv.CAPACITY: "42.5",
            SfuEnv.REPORT_URL: "http://cp:8080/v1/capacity/reports",
            SfuEnv.REPORT_INTERVAL_SECONDS: "2",
            SfuEnv.REPORT_TOKEN_FILE: "/var/run/token",
            SfuEnv.TURN_URIS: "turn:a:3478?transport=udp, turns:a:5349",
            SfuEnv.TURN_SECRET_FILE: "/var/run/turn/secret",
            SfuEnv.DRAIN_GRACE_SECONDS: "0",
            SfuEnv.JOIN_API_PUBLIC_URL: "https://rtc.example.com/switchboard",
        }
    )

    assert config.signalling_port == 9000
    assert config.capacity == 42.5
    assert config.report_interval_seconds == 2
    assert config.turn_uris == ("turn:a:3478?transport=udp", "turns:a:5349")
    assert config.drain_grace_seconds == 0
    assert config.join_api_url == "https://rtc.example.com/switchboard"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (SfuEnv.POD_UID, ""),
        (SfuEnv.ANNOUNCE_ADDRESS, "sfu.example"),
        (SfuEnv.SIGNALLING_PORT, "70000"),
        (SfuEnv.CAPACITY, "-1"),
        (SfuEnv.REPORT_INTERVAL_SECONDS, "5"),
        (SfuEnv.TURN_URIS, "turn:a:3478"),
        (SfuEnv.JOIN_API_PUBLIC_URL, "rtc.example.com"),
        (SfuEnv.JOIN_API_PUBLIC_URL, "https://rtc.example.com/?tenant=a"),
    ],
)
def test_invalid_values_name_the_variable(name: SfuEnv, value: str) -> None:
    with pytest.raises(ConfigError, match=str(name)):
        SfuConfig.from_env({**MINIMAL, name: value})
