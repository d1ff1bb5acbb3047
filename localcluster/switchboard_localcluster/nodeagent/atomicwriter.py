"""Writes a volume's files so a reader never sees a half-updated set (the kubelet's AtomicWriter).

Files live in a timestamped directory; `..data` is a symlink to the current one and each
user-visible name is a symlink through `..data`, so an update is one rename.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from .volumes import FileContent, Payload

DATA_LINK = "..data"


def _current(target: Path) -> Payload | None:
    data = target / DATA_LINK
    if not data.is_symlink():
        return None
    payload: Payload = {}
    for root, _dirs, files in os.walk(data, followlinks=False):
        for name in files:
            path = Path(root) / name
            relative = str(path.relative_to(data))
            payload[relative] = FileContent(path.read_bytes(), path.stat().st_mode & 0o7777)
    return payload


def write_payload(target: Path, payload: Payload, group: int | None = None) -> bool:
    """Make `target` hold exactly `payload`; return whether anything changed.

    `group` (the pod's fsGroup) owns the files, so a non-root container reads a file whose
    mode grants only its group (e.g. a Secret's 0440).
    """
    target.mkdir(parents=True, exist_ok=True)
    if _current(target) == payload:
        return False
    version = target / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.time_ns()}"
    version.mkdir()
    for relative, content in payload.items():
        path = version / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.data)
        if group is not None:
            os.chown(path, -1, group)
        os.chmod(path, content.mode)
    previous = os.readlink(target / DATA_LINK) if (target / DATA_LINK).is_symlink() else None
    staging = target / "..data_tmp"
    if staging.is_symlink():
        staging.unlink()
    staging.symlink_to(version.name)
    staging.replace(target / DATA_LINK)

    visible = {relative.split("/", 1)[0] for relative in payload}
    for name in visible:
        link = target / name
        if not link.is_symlink():
            link.symlink_to(f"{DATA_LINK}/{name}")
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.name not in visible and entry.is_symlink():
            entry.unlink()
    if previous and previous != version.name:
        shutil.rmtree(target / previous, ignore_errors=True)
    return True
