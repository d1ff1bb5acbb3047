"""The operator⇄SFU contract models: wire names, versions, compatibility and helpers."""

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from switchboard_api import contract
from switchboard_api.contract import (
    CapacityReport,
    JoinTokenClaims,
    MigrateMessage,
    ReportResponse,
    RoomUsage,
    SfuEnv,
)


def _report(**overrides) -> CapacityReport:
    fields = {
        "pod_name": "sfu-0",
        "pod_uid": "uid-1",
        "namespace": "switchboard-eu-west",
        "region": "eu-west",
        "sequence": 7,
        "sent_at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        "capacity": 100,
        "load": 12.5,
        "cpu_cores": 0.4,
        "participants": 3,
        "published_tracks": 4,
        "forwarded_tracks": 8,
        "bitrate_in_bps": 2e6,
        "bitrate_out_bps": 4e6,
        "rooms": [
            RoomUsage(
                room="default/standup",
                participants=3,
                published_tracks=4,
                forwarded_tracks=8,
                load=12.5,
            )
        ],
    }
    return CapacityReport(**{**fields, **overrides})


def test_report_wire_form_uses_contract_names():
    wire = _report().to_wire()
    assert wire["version"] == "switchboard.dev/v1"
    assert wire["podUID"] == "uid-1"
    assert wire["sentAt"] == "2025-01-02T03:04:05Z"
    assert wire["rooms"][0]["forwardedTracks"] == 8
    assert CapacityReport.model_validate(wire) == _report()


def test_the_encoded_wire_form_is_the_wire_form():
    report = _report(draining=True, rooms=[])
    assert json.loads(report.to_wire_json()) == report.to_wire()
    assert json.loads(_report().to_wire_json()) == _report().to_wire()
    assert CapacityReport.model_validate_json(_report().to_wire_json()) == _report()


def test_unknown_fields_are_ignored_so_optional_additions_stay_compatible():
    wire = _report().to_wire() | {"futureField": 1}
    assert CapacityReport.model_validate(wire) == _report()


def test_an_unknown_contract_version_is_rejected():
    wire = _report().to_wire() | {"version": "switchboard.dev/v2"}
    with pytest.raises(ValidationError):
        CapacityReport.model_validate(wire)


@pytest.mark.parametrize("field", ["load", "capacity", "bitrate_out_bps", "sequence"])
def test_negative_measurements_are_rejected(field):
    with pytest.raises(ValidationError):
        _report(**{field: -1})


def test_sent_at_must_carry_a_time_zone():
    with pytest.raises(ValidationError):
        _report(sent_at=datetime(2025, 1, 2, 3, 4, 5))


def test_response_defaults_to_no_commands():
    response = ReportResponse(acknowledged=True, sequence=3, failover_timeout_seconds=6)
    assert response.assignments == []
    assert response.close == []
    assert response.drain is False
    wire = ReportResponse.model_validate(
        {
            "acknowledged": True,
            "sequence": 3,
            "failoverTimeoutSeconds": 6,
            "assignments": [{"room": "default/standup", "maxParticipants": 8}],
            "drain": True,
            "drainDeadline": "2025-01-02T03:04:05Z",
            "close": ["default/old"],
        }
    )
    assert wire.assignments[0].max_participants == 8
    assert wire.drain_deadline == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_join_claims_carry_fixed_issuer_and_audience():
    claims = JoinTokenClaims(
        sub="alice", room="default/standup", pod="sfu-0", pod_uid="uid-1", exp=2, iat=1, nbf=1
    ).to_wire()
    assert claims["iss"] == contract.JOIN_TOKEN_ISSUER == "switchboard.dev/control-plane"
    assert claims["aud"] == contract.JOIN_TOKEN_AUDIENCE == "switchboard.dev/sfu"
    assert claims["podUID"] == "uid-1"
    assert claims["grants"] == {"publish": True, "subscribe": True, "data": True}
    with pytest.raises(ValidationError):
        JoinTokenClaims.model_validate(claims | {"aud": "someone-else"})


@pytest.mark.parametrize("key", ["standup", "a/b/c", "Team/x", "/x", "x/"])
def test_room_keys_must_be_namespace_slash_name(key):
    with pytest.raises(ValidationError):
        MigrateMessage(room=key, reason="fenced")
    with pytest.raises(ValueError, match="room key"):
        contract.split_room_key(key)


def test_room_key_round_trips():
    key = contract.room_key("team-a", "standup")
    assert contract.split_room_key(key) == ("team-a", "standup")


def test_migrate_message_wire_form():
    message = MigrateMessage(room="default/standup", reason="draining", rejoin="http://x/join")
    assert message.to_wire() == {
        "type": "migrate",
        "room": "default/standup",
        "reason": "draining",
        "rejoin": "http://x/join",
    }
    with pytest.raises(ValidationError):
        MigrateMessage(room="default/standup", reason="bored")


@pytest.mark.parametrize(
    ("base", "url"),
    [
        (
            "https://rtc.example.com",
            "https://rtc.example.com/v1/namespaces/team-a/rooms/standup/join",
        ),
        (
            "https://rtc.example.com/",
            "https://rtc.example.com/v1/namespaces/team-a/rooms/standup/join",
        ),
        (
            "http://gw:8080/switchboard",
            "http://gw:8080/switchboard/v1/namespaces/team-a/rooms/standup/join",
        ),
    ],
)
def test_join_url_is_the_rooms_join_endpoint_below_the_base_url(base, url):
    assert contract.join_url(base, "team-a/standup") == url
    assert url.endswith(contract.join_path("team-a", "standup"))


def test_join_url_needs_a_room_key():
    with pytest.raises(ValueError, match="room key"):
        contract.join_url("https://rtc.example.com", "standup")


def test_env_vars_are_unique_prefixed_and_each_documented():
    names = [var.value for var in SfuEnv]
    assert len(set(names)) == len(names)
    assert all(name.startswith("SWITCHBOARD_") for name in names)
    assert set(contract.SFU_ENV_MEANING) == set(SfuEnv)
    assert f"{SfuEnv.REPORT_URL}" == "SWITCHBOARD_REPORT_URL"


def test_report_url_and_files_are_where_the_contract_says():
    assert contract.REPORT_PATH.startswith("/")
    assert contract.SfuMounts.REPORT_TOKEN_FILE.startswith(contract.SfuMounts.REPORT_TOKEN_DIR)
    assert contract.MAX_REPORT_INTERVAL_SECONDS == 2.0
