"""command/args semantics: command replaces the entrypoint, args the default arguments."""

import pytest

from switchboard_localcluster.nodeagent.commandline import CommandNotAvailable, container_argv
from switchboard_localcluster.nodeagent.images import LocalImage

IMAGE = LocalImage(entrypoint=("/venv/bin/switchboard-sfu", "--log-format=json"))
ENV = {"PORT": "8443", "PATH": "/usr/bin:/bin"}


def nothing_installed(_executable: str, _path: str | None) -> None:
    return None


def everything_installed(executable: str, _path: str | None) -> str:
    return f"/usr/bin/{executable}"


def test_no_command_no_args_runs_the_entrypoint() -> None:
    assert container_argv(IMAGE, None, None, ENV) == list(IMAGE.entrypoint)


def test_args_are_appended_to_the_entrypoint_with_expansion() -> None:
    argv = container_argv(IMAGE, None, ["--port", "$(PORT)"], ENV)
    assert argv == [*IMAGE.entrypoint, "--port", "8443"]


def test_command_naming_the_entrypoint_program_runs_the_local_installation() -> None:
    argv = container_argv(
        IMAGE,
        ["/usr/local/bin/switchboard-sfu", "serve"],
        ["--port=$(PORT)"],
        ENV,
        which=nothing_installed,
    )
    assert argv == [*IMAGE.entrypoint, "serve", "--port=8443"]


def test_other_commands_run_as_given_when_installed() -> None:
    argv = container_argv(
        IMAGE, ["sh", "-c", "echo $(PORT)"], None, ENV, which=everything_installed
    )
    assert argv == ["sh", "-c", "echo 8443"]


def test_command_missing_locally_is_reported() -> None:
    with pytest.raises(CommandNotAvailable, match="nginx"):
        container_argv(IMAGE, ["nginx", "-g", "daemon off;"], None, ENV, which=nothing_installed)
