"""The generated CRDs: committed YAML up to date, structural, carrying rules and columns."""

import pytest
import yaml

from switchboard_api import crdgen
from switchboard_api.cel import CelValidated
from switchboard_api.region import Region
from switchboard_api.room import Room


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


@pytest.mark.parametrize("directory", crdgen.DEFAULT_OUTPUT_DIRS, ids=["crds", "chart-crds"])
def test_committed_crds_match_the_models(directory):
    stale = crdgen.stale_files(directory)
    assert not stale, f"{directory} is stale; run `switchboard-crds`:\n" + "".join(stale.values())


def test_check_passes_on_fresh_output_and_fails_with_a_diff_when_edited(tmp_path, capsys):
    assert crdgen.main(["--output-dir", str(tmp_path)]) == 0
    assert crdgen.main(["--output-dir", str(tmp_path), "--check"]) == 0

    target = tmp_path / "rooms.switchboard.dev.yaml"
    target.write_text(target.read_text().replace("maxParticipants", "maxPeople", 1))
    capsys.readouterr()
    assert crdgen.main(["--output-dir", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr().out
    assert "-" in out
    assert "+" in out
    assert "maxPeople" in out


def test_check_fails_when_a_crd_file_is_missing(tmp_path):
    crdgen.main(["--output-dir", str(tmp_path)])
    (tmp_path / "regions.switchboard.dev.yaml").unlink()
    assert crdgen.main(["--output-dir", str(tmp_path), "--check"]) == 1


def test_output_is_deterministic():
    assert crdgen.rendered_files() == crdgen.rendered_files()


@pytest.mark.parametrize("model", [Region, Room], ids=lambda m: m.__name__)
def test_schema_is_structural_without_pydantic_leftovers(model):
    schema = crdgen.openapi_schema(model)
    assert crdgen.structural_errors(schema) == []
    for node in _walk(schema):
        assert not {"title", "$ref", "$defs", "const", "examples"} & set(node)
        assert node.get("type") != "null"


@pytest.mark.parametrize("model", [Region, Room], ids=lambda m: m.__name__)
def test_every_spec_field_has_a_description(model):
    spec = crdgen.openapi_schema(model)["properties"]["spec"]
    for node in _walk(spec):
        for name, prop in node.get("properties", {}).items():
            assert prop.get("description"), name


def test_every_cel_rule_is_in_a_crd():
    crds = "".join(crdgen.rendered_files().values())
    rules = [
        entry["rule"]
        for text in crdgen.rendered_files().values()
        for node in _walk(yaml.safe_load(text.split("\n", 1)[1]))
        for entry in node.get("x-kubernetes-validations", ())
    ]
    declared = [rule.rule for model in _all_subclasses(CelValidated) for rule in model.cel_rules]
    assert declared
    assert sorted(rules) == sorted(declared)
    assert "isCIDR" in crds


def test_crd_names_scope_categories_and_columns():
    region = crdgen.custom_resource_definition(Region)
    room = crdgen.custom_resource_definition(Room)
    assert region["spec"]["scope"] == "Cluster"
    assert room["spec"]["scope"] == "Namespaced"
    assert region["spec"]["names"]["shortNames"] == ["rgn"]
    assert room["spec"]["names"]["shortNames"] == ["rm"]
    for crd in (region, room):
        assert crd["spec"]["names"]["categories"] == ["switchboard"]
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert version["name"] == "v1alpha1"
        assert crd["spec"]["group"] == "switchboard.dev"
    room_columns = [c["name"] for c in room["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert room_columns[:4] == ["Phase", "Region", "Pod", "Participants"]


def test_nested_objects_default_to_their_fully_defaulted_model():
    spec = crdgen.openapi_schema(Region)["properties"]["spec"]["properties"]
    assert spec["sfu"]["default"]["minReplicas"] == 1
    assert spec["turn"]["default"]["relayPortRange"] == {"min": 49152, "max": 65535}


def test_optional_fields_are_absent_not_null():
    for node in _walk(crdgen.openapi_schema(Room)):
        assert "nullable" not in node
        assert node.get("default", 0) is not None
