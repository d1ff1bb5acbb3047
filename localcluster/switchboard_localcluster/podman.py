"""podman as this machine runs it: root, runc, cgroupfs, overlay storage in a store of its own.

Debian's podman here needs `--runtime runc` (crun refuses the cgroup v1 "hybrid" layout),
the cgroupfs cgroup manager (PID 1 is not systemd) and the file events backend (no journald).
Every store is a directory of its own (`--root`), so image builds and node agents never share
state by accident; a node agent reads built images through a read-only additional image store.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PODMAN = "podman"
RUNTIME = "runc"


class PodmanError(RuntimeError):
    """A podman command failed; the message carries its standard error."""


def podman_available() -> bool:
    return shutil.which(PODMAN) is not None and shutil.which(RUNTIME) is not None


RUN_ROOT = Path("/run/switchboard-podman")


def runroot_of(root: Path) -> Path:
    """A store's runtime state directory: always the same one for a store (podman refuses
    another), short (its sockets' paths have a length limit), on tmpfs."""
    return RUN_ROOT / hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Podman:
    """One podman store: `root` holds images and containers, `runroot` their runtime state."""

    root: Path
    image_stores: tuple[Path, ...] = ()
    """Read-only stores whose images this store can run (containers/storage's
    additional image stores)."""

    @property
    def runroot(self) -> Path:
        return runroot_of(self.root)

    def argv(self, *args: str) -> list[str]:
        options = [f"additionalimagestore={store}" for store in self.image_stores]
        return [
            PODMAN,
            "--root",
            str(self.root),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            "overlay",
            *(arg for option in options for arg in ("--storage-opt", option)),
            "--runtime",
            RUNTIME,
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            *args,
        ]

    def run(
        self, *args: str, check: bool = True, input: bytes | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(*args),
            input=input.decode() if input is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise PodmanError(_failure(args, result.returncode, result.stderr))
        return result

    async def run_async(
        self, *args: str, check: bool = True, timeout_seconds: float = 120
    ) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of one podman command, from asyncio."""
        process = await asyncio.create_subprocess_exec(
            *self.argv(*args),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout_seconds)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise PodmanError(
                f"podman {' '.join(args[:2])} timed out after {timeout_seconds:g}s"
            ) from None
        code = process.returncode or 0
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        if check and code != 0:
            raise PodmanError(_failure(args, code, stderr))
        return code, stdout, stderr

    def inspect_image(self, reference: str) -> dict[str, Any] | None:
        result = self.run("image", "inspect", reference, check=False)
        if result.returncode != 0:
            return None
        return dict(json.loads(result.stdout)[0])


def _failure(args: Sequence[str], code: int, stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    detail = lines[-1] if lines else f"exit code {code}"
    return f"podman {' '.join(args[:2])}: {detail}"
