"""The per-container launcher: private mounts, hostname, working dir, and clear start errors."""

import asyncio
import os
import socket
from pathlib import Path

import pytest

from switchboard_localcluster.nodeagent.process import LaunchSpec, Mount, StartFailed, launch

pytestmark = [
    pytest.mark.nodeagent,
    pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root"),
]


def test_container_sees_its_mounts_hostname_and_env_and_the_host_does_not(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "greeting").write_text("hello\n")
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    output = tmp_path / "out.log"
    script = (
        'hostname; cat "$MNT/greeting"; pwd; echo "$GREETING"; '
        'touch "$MNT/x" 2>/dev/null || echo ro'
    )

    async def run() -> int:
        spec = LaunchSpec(
            argv=["sh", "-c", script],
            env={"PATH": os.environ["PATH"], "MNT": str(mount_point), "GREETING": "hi"},
            hostname="pod-under-test",
            working_dir=str(tmp_path),
            mounts=[Mount(str(volume), str(mount_point), readOnly=True)],
        )
        process = await launch(spec, output)
        return await process.wait()

    assert asyncio.run(run()) == 0
    assert output.read_text().splitlines() == ["pod-under-test", "hello", str(tmp_path), "hi", "ro"]
    assert list(mount_point.iterdir()) == []
    assert socket.gethostname() != "pod-under-test"


def test_missing_executable_is_a_start_error() -> None:
    async def run() -> None:
        await launch(LaunchSpec(argv=["no-such-program-xyz"], env={"PATH": "/usr/bin"}), None)

    with pytest.raises(StartFailed, match="no-such-program-xyz"):
        asyncio.run(run())
