"""Kubernetes `$(VAR)` reference expansion, as applied to env values, command and args."""

from __future__ import annotations

from collections.abc import Mapping


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Expand `$(NAME)` references the way the kubelet does.

    `$$` escapes a `$`, so `$$(NAME)` yields the literal `$(NAME)`; a reference to an
    undefined name, or an unterminated one, is left exactly as written.
    """
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char != "$" or i + 1 >= n:
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close == -1:
                # Unterminated: keep `$(` and go on scanning, so later `$$` still unescape.
                out.append("$(")
                i += 2
                continue
            name = text[i + 2 : close]
            if name in variables:
                out.append(variables[name])
            else:
                out.append(text[i : close + 1])
            i = close + 1
        else:
            # A lone `$` before any other character stays as it is.
            out.append(char)
            i += 1
    return "".join(out)


def expand_all(items: list[str], variables: Mapping[str, str]) -> list[str]:
    return [expand(item, variables) for item in items]
