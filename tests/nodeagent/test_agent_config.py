"""The agent configuration file: short and long image forms, node addresses, validation."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from switchboard_localcluster.nodeagent.config import AgentConfig, load_config
from switchboard_localcluster.nodeagent.presets import agent_config, write_config


def test_preset_round_trips_through_the_file(tmp_path: Path) -> None:
    document = agent_config(
        tmp_path / "work",
        {"eu-west": ["eu-west-a", "eu-west-b"]},
        "127.50.0.0/16",
        nodes_per_zone=2,
        restartBackoff={"initialSeconds": 1},
    )
    config = load_config(write_config(tmp_path / "agent.yaml", document))
    assert [n.name for n in config.nodes] == [
        "eu-west-a-1",
        "eu-west-a-2",
        "eu-west-b-1",
        "eu-west-b-2",
    ]
    assert {n.zone for n in config.nodes} == {"eu-west-a", "eu-west-b"}
    assert config.backoff_policy().initial_seconds == 1
    # Without image stores, the local stand-ins run the project's images (the inner loop).
    assert config.catalogue().resolve("switchboard/turn:0.1.0") is not None
    assert config.image_stores == []


def test_image_short_and_long_forms() -> None:
    config = AgentConfig.model_validate(
        {
            "workDir": "/tmp/x",
            "nodes": [{"name": "n1", "region": "r", "zone": "z"}],
            "images": {
                "a/b": ["prog", "--flag"],
                "c/d": {"entrypoint": ["other"], "env": {"K": "V"}},
            },
        }
    )
    catalogue = config.catalogue()
    assert catalogue.resolve("a/b:1").entrypoint == ("prog", "--flag")
    assert catalogue.resolve("c/d").env == {"K": "V"}


def test_node_addresses_come_first_from_the_pod_range() -> None:
    config = AgentConfig.model_validate(
        {
            "workDir": "/tmp/x",
            "podAddressRange": "127.60.0.0/16",
            "nodes": [
                {"name": "n1", "region": "r", "zone": "z"},
                {"name": "n2", "region": "r", "zone": "z", "address": "127.0.0.9"},
            ],
        }
    )
    assert config.node_addresses() == {"n1": "127.60.0.1", "n2": "127.0.0.9"}


@pytest.mark.parametrize(
    "document",
    [
        {"workDir": "/x", "nodes": []},
        {"workDir": "/x", "nodes": [{"name": "Bad_Name", "region": "r", "zone": "z"}]},
        {
            "workDir": "/x",
            "nodes": [{"name": "n", "region": "r", "zone": "z", "address": "10.0.0.1"}],
        },
        {"workDir": "/x", "nodes": [{"name": "n", "region": "r", "zone": "z"}] * 2},
        {"workDir": "/x", "nodes": [{"name": "n", "region": "r", "zone": "z"}], "unknownKey": 1},
        {
            "workDir": "/x",
            "nodes": [{"name": "n", "region": "r", "zone": "z"}],
            "images": {"a": []},
        },
    ],
)
def test_invalid_configs_are_rejected(document: dict) -> None:
    with pytest.raises(ValidationError):
        AgentConfig.model_validate(yaml.safe_load(yaml.safe_dump(document)))
