"""`$(VAR)` expansion follows the kubelet's rules for env values, command and args."""

import pytest

from switchboard_localcluster.nodeagent.expansion import expand

VARS = {"NAME": "pod-1", "PORT": "8080", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(NAME)", "pod-1"),
        ("http://$(NAME):$(PORT)/x", "http://pod-1:8080/x"),
        ("$(EMPTY)x", "x"),
        ("$(UNDEFINED)", "$(UNDEFINED)"),
        ("$$(NAME)", "$(NAME)"),
        ("$$$(NAME)", "$pod-1"),
        ("$$", "$"),
        ("cost $5", "cost $5"),
        ("trailing $", "trailing $"),
        ("$(NAME", "$(NAME"),
        ("$(NAME $$", "$(NAME $"),
        ("$()", "$()"),
        ("no references", "no references"),
    ],
)
def test_expansion(text: str, expected: str) -> None:
    assert expand(text, VARS) == expected
