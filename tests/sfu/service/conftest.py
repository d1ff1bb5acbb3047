"""Fixtures for the SFU service tests: join keys, a report receiver, SFU subprocesses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from fixtures.sfu_harness import JoinKeys, PodIdentity, ReportReceiver, SfuProcess, sign_join_token


@pytest.fixture
def join_keys(tmp_path: Path) -> JoinKeys:
    return JoinKeys(tmp_path / "join-keys")


@pytest.fixture
def pod() -> PodIdentity:
    return PodIdentity()


@pytest.fixture
def token(join_keys: JoinKeys, pod: PodIdentity) -> Callable[..., str]:
    """Sign a join token for this pod: token(room=..., identity=..., grants=..., ...)."""

    def make(**kwargs: object) -> str:
        return sign_join_token(join_keys, pod, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def receiver() -> AsyncIterator[ReportReceiver]:
    receiver = ReportReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def start_sfu(
    tmp_path: Path, join_keys: JoinKeys, pod: PodIdentity
) -> AsyncIterator[Callable[..., object]]:
    """start_sfu(report_url=None, extra_env=None) -> a running SfuProcess (killed at the end)."""
    processes: list[SfuProcess] = []

    async def start(
        report_url: str | None = None, extra_env: dict[str, str] | None = None
    ) -> SfuProcess:
        workdir = tmp_path / f"sfu-{len(processes)}"
        workdir.mkdir()
        sfu = SfuProcess(workdir, join_keys, pod, report_url=report_url, extra_env=extra_env)
        processes.append(sfu)
        await sfu.start()
        return sfu

    yield start
    for sfu in processes:
        sfu.stop()


@pytest.fixture
async def sfu(start_sfu: Callable[..., object]) -> SfuProcess:
    """A stand-alone SFU (no control plane)."""
    return await start_sfu()  # type: ignore[misc]
