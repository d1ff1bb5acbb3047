"""The informer splits a watch stream into events however the bytes arrive, and
accepts events larger than aiohttp's line reader would (a Room may be ~1.5 MiB)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace

from switchboard_operator.kit.informer import event_lines


def stream(*chunks: bytes) -> SimpleNamespace:
    async def iter_any() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    return SimpleNamespace(iter_any=iter_any)


async def collect(*chunks: bytes) -> list[bytes]:
    return [line async for line in event_lines(stream(*chunks))]  # type: ignore[arg-type]


async def test_events_split_across_and_within_chunks() -> None:
    assert await collect(b'{"a":1}\n{"b"', b":2}\n\n", b'{"c":3}') == [
        b'{"a":1}',
        b'{"b":2}',
        b'{"c":3}',
    ]


async def test_an_event_of_a_megabyte_and_more() -> None:
    big = json.dumps({"type": "MODIFIED", "object": {"pad": "x" * 1_600_000}}).encode()
    pieces = [big[i : i + 65536] for i in range(0, len(big), 65536)]
    lines = await collect(*pieces, b"\n")
    assert lines == [big]
