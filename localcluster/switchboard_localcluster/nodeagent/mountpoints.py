"""Mount points on the shared filesystem for pods' private mount namespaces.

A bind mount needs its target to exist. Targets such as /etc/app/config do not exist on the
host, so they are created here and removed again once no pod of any agent on this machine
uses them: removing one while another namespace still mounts on it would detach that pod's
mount. Agents share one registry file, updated under an exclusive lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_REGISTRY = Path("/run/switchboard-nodeagent/mountpoints.json")


def process_key(pid: int) -> str | None:
    """`pid:starttime`, so a recycled pid never inherits a dead agent's claims."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{pid}:{stat.rsplit(')', 1)[1].split()[19]}"


class MountPoints:
    def __init__(self, registry: Path = DEFAULT_REGISTRY, owner_pid: int | None = None) -> None:
        """`owner_pid`: the process whose claims these are (this process unless given)."""
        self.registry = registry
        key = process_key(owner_pid or os.getpid())
        if key is None:
            raise ProcessLookupError(f"no process {owner_pid}")
        self._me = key

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.registry.parent.mkdir(parents=True, exist_ok=True)
        with open(self.registry.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = json.loads(self.registry.read_text()) if self.registry.exists() else {}
            except ValueError:
                data = {}
            data.setdefault("created", [])
            data.setdefault("users", {})
            yield data
            staging = self.registry.with_suffix(".tmp")
            staging.write_text(json.dumps(data, indent=1, sort_keys=True))
            staging.replace(self.registry)

    def acquire(self, target: Path, is_file: bool) -> None:
        """Make sure `target` exists as a directory (or file) and count one more user."""
        with self._locked() as data:
            missing = [p for p in [target, *target.parents] if not p.exists()]
            for path in reversed(missing):
                if path == target and is_file:
                    path.touch()
                else:
                    path.mkdir()
                data["created"].append(str(path))
            users = data["users"].setdefault(str(target), {})
            users[self._me] = users.get(self._me, 0) + 1

    def release(self, target: Path) -> None:
        with self._locked() as data:
            users = data["users"].get(str(target), {})
            if users.get(self._me, 0) > 1:
                users[self._me] -= 1
            else:
                users.pop(self._me, None)
            self._forget_dead(data)
            self._remove_unused(data, target)

    def release_all(self) -> None:
        """Drop every claim of this process (agent shutdown) and remove what nobody uses."""
        with self._locked() as data:
            mine = [path for path, users in data["users"].items() if self._me in users]
            for path in mine:
                data["users"][path].pop(self._me, None)
            self._forget_dead(data)
            for path in mine:
                self._remove_unused(data, Path(path))

    @staticmethod
    def _forget_dead(data: dict[str, Any]) -> None:
        for path, users in list(data["users"].items()):
            for key in list(users):
                if process_key(int(key.split(":")[0])) != key:
                    del users[key]
            if not users:
                del data["users"][path]

    @staticmethod
    def _remove_unused(data: dict[str, Any], target: Path) -> None:
        created = set(data["created"])
        in_use = [Path(p) for p in data["users"]]
        for path in [target, *target.parents]:
            if str(path) not in created:
                break
            if any(used == path or path in used.parents for used in in_use):
                break
            try:
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                elif path.exists():
                    path.unlink()
            except OSError as error:
                # Not empty: something else put files there; leave it.
                log.warning("mount point kept path=%s error=%s", path, error)
                break
            created.discard(str(path))
        data["created"] = sorted(created)
