"""What `switchboard-dev up` hands its user: the addresses and the demo key, printed and
written to `<workdir>/env` (a file to source) from one list, so the two never differ."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from switchboard_api.contract import join_path
from switchboard_dev.demo.apikey import DEMO_NAMESPACE

EXAMPLE_ROOM: Final = "hello"
EXAMPLE_IDENTITY: Final = "alice"


@dataclass(frozen=True)
class Setting:
    """One value the user gets: printed as `label` and exported as `variable`."""

    label: str
    variable: str
    value: str
    note: str = ""


@dataclass(frozen=True)
class UpSummary:
    workdir: Path
    kubeconfig: Path
    kubectl: Path
    join_api_url: str
    demo_api_key: str
    demo_page_url: str
    prometheus_url: str | None = None

    @property
    def env_path(self) -> Path:
        return self.workdir / "env"

    def settings(self) -> list[Setting]:
        """Everything printed and exported. Another endpoint `up` runs is one more entry."""
        settings = [
            Setting(
                "Demo page",
                "SWITCHBOARD_DEMO_PAGE_URL",
                self.demo_page_url,
                "open it in two tabs and join the same room",
            ),
            Setting("Join API", "SWITCHBOARD_JOIN_API_URL", self.join_api_url),
            Setting(
                "Demo API key",
                "SWITCHBOARD_DEMO_API_KEY",
                self.demo_api_key,
                f"joins and creates rooms in namespace {DEMO_NAMESPACE} only",
            ),
        ]
        if self.prometheus_url is not None:
            settings.append(
                Setting(
                    "Prometheus",
                    "SWITCHBOARD_PROMETHEUS_URL",
                    self.prometheus_url,
                    "the operator, SFU and TURN pods through the chart's monitors, with its alerts",
                )
            )
        return settings

    def curl_join(self) -> str:
        """A join API call that works as printed: the demo key, room `hello` of the demo
        namespace, JSON as the API requires."""
        url = self.join_api_url.rstrip("/") + join_path(DEMO_NAMESPACE, EXAMPLE_ROOM)
        body = f'{{"identity": "{EXAMPLE_IDENTITY}"}}'
        return (
            f"curl -H {shlex.quote(f'Authorization: Bearer {self.demo_api_key}')} "
            "-H 'Content-Type: application/json' \\\n"
            f"  -d {shlex.quote(body)} {shlex.quote(url)}"
        )

    def env_file(self) -> str:
        lines = [
            "# Written by `switchboard-dev up` (make up) while it runs; removed when it stops.",
            f"export KUBECONFIG={shlex.quote(str(self.kubeconfig))}",
            f'export PATH={shlex.quote(str(self.kubectl.parent))}:"$PATH"',
            *(f"export {s.variable}={shlex.quote(s.value)}" for s in self.settings()),
        ]
        return "\n".join(lines) + "\n"

    def write_env(self) -> Path:
        """Write the env file, readable by its owner only (it holds the demo key)."""
        path = self.env_path
        temporary = path.with_name(path.name + ".tmp")
        temporary.unlink(missing_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(self.env_file())
        temporary.replace(path)
        return path

    def text(self) -> str:
        """The lines `up` prints once everything is ready."""
        width = max(len(s.label) for s in self.settings()) + 2
        lines = []
        for setting in self.settings():
            note = f"   ({setting.note})" if setting.note else ""
            lines.append(f"{setting.label + ':':<{width}} {setting.value}{note}")
        lines += [
            "",
            "Join a room from the command line:",
            "  " + self.curl_join().replace("\n", "\n  "),
            "",
            f"{'Use it:':<{width}} . {shlex.quote(str(self.env_path))}"
            "   (KUBECONFIG, kubectl on PATH and the values above)",
            f"{'':<{width}} kubectl get switchboard -A",
            f"{'Logs:':<{width}} {self.workdir}",
        ]
        return "\n".join(lines)
