"""Ports for the processes a local stack starts are picked below the kernel's ephemeral
range, where no outgoing connection can take one before its process binds it, and never
twice in one run."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from switchboard_localcluster import ports
from switchboard_localcluster.ports import LOOPBACK, LOWEST, ephemeral_start, free_port


def test_ports_come_from_below_the_ephemeral_range_and_never_repeat() -> None:
    start = ephemeral_start()
    assert start is not None, "this machine has an ephemeral port range"
    picked = [free_port() for _ in range(300)]
    assert all(LOWEST <= port < start for port in picked), picked
    assert len(set(picked)) == len(picked)


def test_a_port_someone_holds_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind((LOOPBACK, 0))
        taken = held.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((LOOPBACK, 0))
            other = probe.getsockname()[1]
        offers = iter([taken, other])
        monkeypatch.setattr(ports, "ephemeral_start", lambda path=None: 65535)
        monkeypatch.setattr(ports.random, "randrange", lambda low, high: next(offers))
        assert free_port() == other


def test_without_a_readable_range_the_kernel_picks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ephemeral_start(tmp_path / "missing") is None
    (tmp_path / "range").write_text("1024\t65535\n")
    assert ephemeral_start(tmp_path / "range") == 1024
    start = ephemeral_start()
    assert start is not None
    monkeypatch.setattr(ports, "ephemeral_start", lambda path=None: None)
    assert free_port() >= start  # the kernel's own pick, from its ephemeral range
