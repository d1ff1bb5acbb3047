"""An API server that drops the agent's connection mid-request (killed, restarted) is a
transient failure the agent rides out, as it rides out one that refuses connections: the
agent's client says so with one error type, an OSError like a refused connection.

Before, a dropped connection surfaced as aiohttp's own errors, which the pod worker's volume
refresh did not expect: an API server killed while a refresh was in flight ended the worker,
and with it the pod's running containers (a fault-suite SFU pod stopped serving its calls).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from kubernetes_asyncio import client

from switchboard_localcluster.nodeagent.kube import Kube, KubeUnreachable

Respond = Callable[[asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def api_server() -> AsyncIterator[Callable[[Respond], Awaitable[Kube]]]:
    """Start a loopback HTTP server that answers every request with `respond` (which may
    hang up), and a Kube client of it."""
    servers: list[asyncio.base_events.Server] = []
    clients: list[Kube] = []

    async def start(respond: Respond) -> Kube:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            await respond(writer)
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        kube = Kube(client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{port}")))
        clients.append(kube)
        return kube

    yield start
    for kube in clients:
        await kube.close()
    for server in servers:
        server.close()
        await server.wait_closed()


async def hang_up(writer: asyncio.StreamWriter) -> None:
    """The request read, and no answer at all: the API server died before it answered."""


async def cut_answer(writer: asyncio.StreamWriter) -> None:
    """Half an answer: the API server died while it answered."""
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        b'{"kind": "Secret"'
    )
    await writer.drain()


async def cut_watch(writer: asyncio.StreamWriter) -> None:
    """A watch that delivers one event, then the connection drops mid-stream."""
    event = b'{"type": "ADDED", "object": {"metadata": {"name": "a"}}}\n'
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(event):x}\r\n".encode()
        + event
        + b"\r\n"
    )
    await writer.drain()


@pytest.mark.parametrize("respond", [hang_up, cut_answer], ids=["no answer", "half an answer"])
async def test_a_request_whose_connection_drops_is_unreachable(api_server, respond) -> None:
    kube = await api_server(respond)
    with pytest.raises(KubeUnreachable) as raised:
        await kube.get("/api/v1/namespaces/default/secrets/keys")
    # The agent's callers ride out OSError (a refused connection): this is one too.
    assert isinstance(raised.value, OSError)
    assert "/api/v1/namespaces/default/secrets/keys" in str(raised.value)


async def test_a_watch_whose_connection_drops_mid_stream_is_unreachable(api_server) -> None:
    kube = await api_server(cut_watch)
    events = []
    with pytest.raises(KubeUnreachable):
        async for event in kube.watch("/api/v1/pods", {}, 60):
            events.append(event)
    assert [e["object"]["metadata"]["name"] for e in events] == ["a"]


async def test_a_refused_connection_is_still_an_os_error() -> None:
    kube = Kube(client.ApiClient(client.Configuration(host="http://127.0.0.1:1")))
    try:
        with pytest.raises(OSError):
            await kube.get("/api/v1/pods")
    finally:
        await kube.close()
