"""Volume files on disk: atomic updates through `..data`, and mount points created and removed."""

import json
import os
import subprocess
from pathlib import Path

from switchboard_localcluster.nodeagent.atomicwriter import write_payload
from switchboard_localcluster.nodeagent.mountpoints import MountPoints
from switchboard_localcluster.nodeagent.volumes import FileContent


def test_payload_is_written_behind_symlinks_and_updated_atomically(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert write_payload(target, {"a": FileContent(b"1", 0o600), "dir/b": FileContent(b"2", 0o644)})
    assert (target / "a").read_bytes() == b"1"
    assert (target / "dir" / "b").read_bytes() == b"2"
    assert (target / "a").is_symlink()
    assert os.stat(target / "a").st_mode & 0o777 == 0o600

    assert not write_payload(
        target, {"a": FileContent(b"1", 0o600), "dir/b": FileContent(b"2", 0o644)}
    )

    assert write_payload(target, {"a": FileContent(b"changed", 0o600)})
    assert (target / "a").read_bytes() == b"changed"
    assert not (target / "dir").exists()
    versions = [p for p in target.iterdir() if p.name.startswith("..") and not p.is_symlink()]
    assert len(versions) == 1


def test_mount_points_are_created_and_removed_when_unused(tmp_path: Path) -> None:
    points = MountPoints(tmp_path / "registry.json")
    first = tmp_path / "etc" / "app" / "config"
    second = tmp_path / "etc" / "app" / "secret"
    points.acquire(first, is_file=False)
    points.acquire(first, is_file=False)
    points.acquire(second, is_file=False)
    assert first.is_dir() and second.is_dir()

    points.release(first)
    assert first.is_dir()  # still used once
    points.release(first)
    assert not first.exists()
    assert second.is_dir()

    points.release(second)
    assert not (tmp_path / "etc").exists()
    assert tmp_path.is_dir()


def test_existing_directories_are_never_removed(tmp_path: Path) -> None:
    existing = tmp_path / "data"
    existing.mkdir()
    points = MountPoints(tmp_path / "registry.json")
    points.acquire(existing / "x", is_file=True)
    assert (existing / "x").is_file()
    points.release_all()
    assert not (existing / "x").exists()
    assert existing.is_dir()


def test_a_mount_point_stays_while_another_agent_uses_it(tmp_path: Path) -> None:
    registry = tmp_path / "registry.json"
    target = tmp_path / "etc" / "shared"
    # Two agents: this process and (standing in for another agent) its parent.
    first, second = MountPoints(registry), MountPoints(registry, owner_pid=os.getppid())
    first.acquire(target, is_file=False)
    second.acquire(target, is_file=False)

    first.release_all()
    assert target.is_dir()
    second.release(target)
    assert not (tmp_path / "etc").exists()


def test_claims_of_dead_agents_do_not_keep_mount_points(tmp_path: Path) -> None:
    registry = tmp_path / "registry.json"
    target = tmp_path / "opt" / "app"
    dead = subprocess.Popen(["true"])
    dead.wait()
    MountPoints(registry).acquire(target, is_file=False)
    data = json.loads(registry.read_text())
    data["users"][str(target)][f"{dead.pid}:1"] = 1
    registry.write_text(json.dumps(data))

    MountPoints(registry).release(target)
    assert not (tmp_path / "opt").exists()
