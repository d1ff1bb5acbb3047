"""Fixtures of the demo tests: the README's `make up`, shared by the page and README tests,
and where they leave artifacts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.make_up import ARTIFACTS_DIR, README, MakeUp
from fixtures.readme import BACKGROUND, shell_blocks


@pytest.fixture(scope="session")
def make_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeUp]:
    blocks = [b for b in shell_blocks(README.read_text()) if b.tag == BACKGROUND]
    assert len(blocks) == 1, f"one {BACKGROUND} block (make up) expected, found {len(blocks)}"
    [block] = blocks
    running = MakeUp(block.text.strip(), tmp_path_factory.mktemp("make-up") / "output.log")
    try:
        running.wait_ready()
        yield running
    finally:
        if running.process.poll() is None:
            running.stop()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where this directory's tests leave screenshots and figures (kept after the run)."""
    path = ARTIFACTS_DIR / "demo"
    path.mkdir(parents=True, exist_ok=True)
    return path
