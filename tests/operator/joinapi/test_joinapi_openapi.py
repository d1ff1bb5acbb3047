"""docs/join-api.openapi.yaml is what the join API's models and routes generate, is a valid
OpenAPI 3.1 document, and the answers the handler actually gives validate against it."""

from __future__ import annotations

import pytest
import yaml
from joinapi_fakes import placed_room

from switchboard_api.contract import JOIN_PATH_TEMPLATE
from switchboard_operator.joinapi import openapi
from switchboard_operator.joinapi.codes import ERROR_STATUSES, ErrorCode
from switchboard_operator.joinapi.models import JoinRequest


def _committed() -> dict:
    return yaml.safe_load(openapi.DEFAULT_OUTPUT.read_text())


def test_the_committed_spec_is_what_the_models_generate():
    assert openapi.main(["--check"]) == 0, (
        "docs/join-api.openapi.yaml is stale: run `python -m switchboard_operator.joinapi.openapi`"
    )


def test_check_reports_a_stale_spec(tmp_path, capsys):
    stale = tmp_path / "join-api.openapi.yaml"
    stale.write_text(openapi.render().replace("maxLength: 100", "maxLength: 99"))

    assert openapi.main(["--check", "--output", str(stale)]) == 1
    assert "maxLength: 100" in capsys.readouterr().out


def test_the_spec_is_valid_openapi_3_1():
    validator = pytest.importorskip("openapi_spec_validator")

    validator.validate(_committed())


def test_the_spec_documents_every_status_the_endpoint_answers_with():
    operation = _committed()["paths"][JOIN_PATH_TEMPLATE]["post"]
    documented = set(operation["responses"])
    endpoint_codes = set(ErrorCode) - {ErrorCode.NOT_FOUND, ErrorCode.METHOD_NOT_ALLOWED}

    expected = {"200"} | {str(int(s)) for c in endpoint_codes for s in ERROR_STATUSES[c]}
    assert documented == expected
    for code in endpoint_codes:
        for status in ERROR_STATUSES[code]:
            assert f"`{code}`" in operation["responses"][str(int(status))]["description"]


def _validator(schema_name: str):
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    spec = _committed()
    resource = referencing.Resource.from_contents(
        spec, default_specification=referencing.jsonschema.DRAFT202012
    )
    registry = referencing.Registry().with_resource("spec", resource)
    return jsonschema.Draft202012Validator(
        {"$ref": f"spec#/components/schemas/{schema_name}"}, registry=registry
    )


async def test_a_real_join_answer_matches_the_spec(join_api):
    answer = await (await join_api.join()).json()

    _validator("JoinResponse").validate(answer)


async def test_a_real_error_answer_matches_the_spec(join_api):
    join_api.placements.rooms["team-a/standup"] = placed_room("team-a", "standup")
    answer = await (await join_api.join(body={"identity": ""})).json()

    _validator("ErrorBody").validate(answer)


def test_requests_the_spec_refuses_are_refused_by_the_model():
    validator = _validator("JoinRequest")

    for body in [
        {"identity": "a", "extra": 1},
        {"identity": "a", "location": {"latitude": 91, "longitude": 0}},
        {"identity": "a", "maxParticipants": 1001},
        {"identity": "x" * 101},
    ]:
        assert not validator.is_valid(body)
        with pytest.raises(ValueError):
            JoinRequest.model_validate(body, strict=True)
    good = {"identity": "a", "grants": {"publish": False}, "region": "eu-west"}
    assert validator.is_valid(good)
    JoinRequest.model_validate(good, strict=True)
