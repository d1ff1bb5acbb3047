"""A container's argv under Kubernetes semantics, mapped onto the image's local installation."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence

from .expansion import expand_all
from .images import LocalImage

Which = Callable[[str, str | None], str | None]


class CommandNotAvailable(Exception):
    """The container names an executable that exists neither in the image's stand-in nor locally."""


def default_which(executable: str, path: str | None) -> str | None:
    return shutil.which(executable, path=path)


def container_argv(
    image: LocalImage,
    command: Sequence[str] | None,
    args: Sequence[str] | None,
    env: Mapping[str, str],
    which: Which = default_which,
) -> list[str]:
    """Build the argv to execute for a container.

    As in Kubernetes, `command` replaces the image entrypoint and `args` replace its default
    arguments (the local stand-in has none); both get `$(VAR)` expansion from the container env.
    An overriding `command` whose executable has the entrypoint's file name runs the local
    installation (image paths need not match local ones); otherwise it must exist on PATH.
    """
    expanded_args = expand_all(list(args or ()), env)
    if not command:
        return [*image.entrypoint, *expanded_args]
    expanded_command = expand_all(list(command), env)
    executable = expanded_command[0]
    if os.path.basename(executable) == os.path.basename(image.entrypoint[0]):
        return [*image.entrypoint, *expanded_command[1:], *expanded_args]
    if which(executable, env.get("PATH")) is None:
        raise CommandNotAvailable(
            f"executable {executable!r} is not the image's local entrypoint "
            f"{image.entrypoint[0]!r} and is not installed on this machine"
        )
    return [*expanded_command, *expanded_args]
