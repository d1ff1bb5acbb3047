"""Bad input, fuzzed: malformed JSON, wrong types, huge SDP, binary and truncated frames on
the signalling WebSocket (before and after a valid join), and arbitrary WHIP/WHEP bodies.
The SFU answers each with a refusal or an `error`, never crashes, holds nothing for the
sessions once they are gone, keeps its memory bounded, and serves the next real client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.sfu_clients import SignallingClient, SyntheticVideo
from fixtures.sfu_harness import JoinKeys, PodIdentity, SfuProcess, sign_join_token
from fixtures.waiting import eventually

ROOM = "default/fuzz"
EXAMPLES = 60
MEMORY_HEADROOM_BYTES = 64 * 1024 * 1024
"""What the fuzzed sessions may leave allocated (allocator caches), against a per-message
cost that, if anything were kept, would grow without bound over the run."""
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

FIELDS = [
    "sdp", "trackIds", "candidate", "target", "metadata", "token", "requestId",
    "trackId", "rid", "maxHeight",
]  # fmt: skip
MESSAGE_TYPES = [
    "join", "publish", "unpublish", "subscribe", "unsubscribe", "answer", "candidate",
    "setMetadata", "setVideoLayer", "leave", "ping", "bogus",
]  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
huge_sdp = st.integers(min_value=1000, max_value=12000).map(
    lambda n: "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\n" + "a=candidate:x\r\n" * n
)
field_values = json_values | huge_sdp | st.just("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n")
typed_messages = st.fixed_dictionaries(
    {"type": st.sampled_from(MESSAGE_TYPES)},
    optional={name: field_values for name in FIELDS},
).map(json.dumps)
frames = st.lists(
    typed_messages
    | json_values.map(json.dumps)
    | st.text(max_size=200)
    | st.binary(max_size=200)
    | st.text(min_size=1, max_size=40).map(lambda t: "{" + t),  # truncated JSON
    min_size=1,
    max_size=6,
)


@pytest.fixture(scope="module")
def sfu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SfuProcess]:
    workdir = tmp_path_factory.mktemp("fuzz-sfu")
    process = SfuProcess(workdir, JoinKeys(workdir / "join-keys"), PodIdentity())
    asyncio.run(process.start())
    try:
        yield process
    finally:
        process.stop()


def token(sfu: SfuProcess, identity: str) -> str:
    return sign_join_token(sfu.keys, sfu.pod, room=ROOM, identity=identity)


async def _send_frames(sfu: SfuProcess, join_first: bool, messages: list, abort: bool) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(sfu.ws_url, max_msg_size=0)
        try:
            if join_first:
                await ws.send_str(json.dumps({"type": "join", "token": token(sfu, "fuzzer")}))
            for message in messages:
                if ws.closed:
                    break
                try:
                    if isinstance(message, bytes):
                        await ws.send_bytes(message)
                    else:
                        await ws.send_str(message)
                except ConnectionResetError:
                    break  # the SFU closed the socket (a refused join) between two frames
            if abort:
                # Cut the connection mid-frame: a frame header promising bytes that never come.
                transport = ws._writer.transport  # only a raw write can truncate a frame
                transport.write(b"\x81\xfe\x10\x00" + b"{" * 10)
                transport.abort()
        finally:
            await ws.close()


async def _answers_health(sfu: SfuProcess) -> None:
    status, _ = await sfu.get("/healthz")
    assert status == 200, sfu.log()[-2000:]


@FUZZ
@given(join_first=st.booleans(), messages=frames, abort=st.booleans())
def test_signalling_survives_any_frames(sfu, join_first, messages, abort):
    async def run() -> None:
        await _send_frames(sfu, join_first, messages, abort)
        await _answers_health(sfu)

    asyncio.run(run())
    assert sfu.exited() is None, sfu.log()[-2000:]


bodies = (
    st.binary(max_size=2000)
    | st.text(max_size=2000).map(str.encode)
    | huge_sdp.map(str.encode)
    | st.just(b"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n")
)
content_types = st.sampled_from(
    ["application/sdp", "application/json", "text/plain", "application/trickle-ice-sdpfrag"]
)


@FUZZ
@given(
    endpoint=st.sampled_from(["/whip/default/fuzz", "/whep/default/fuzz"]),
    body=bodies,
    content_type=content_types,
    authorized=st.booleans(),
)
def test_whip_and_whep_refuse_any_body_without_a_server_error(
    sfu, endpoint, body, content_type, authorized
):
    async def run() -> int:
        headers = {"Content-Type": content_type}
        if authorized:
            headers["Authorization"] = f"Bearer {token(sfu, 'fuzz-http')}"
        async with (
            aiohttp.ClientSession() as session,
            session.post(sfu.base_url + endpoint, data=body, headers=headers) as reply,
        ):
            await reply.read()
            return reply.status

    status = asyncio.run(run())
    assert status < 500 or status == 503, status
    assert sfu.exited() is None, sfu.log()[-2000:]


def test_after_the_fuzzing_the_sfu_holds_nothing_and_serves_a_real_client(sfu):
    """Runs after the fuzz tests of this module (pytest keeps file order)."""

    async def run() -> None:
        async def released() -> bool:
            metrics = await sfu.metrics()
            return metrics.get("switchboard_sfu_participants") == 0

        await eventually(released, 30, "every fuzzed session to be released")
        before = sfu.rss_bytes()
        publisher = SignallingClient(sfu.ws_url)
        try:
            assert (await publisher.connect(token(sfu, "alice")))["type"] == "joined"
            assert (await publisher.publish(SyntheticVideo()))["type"] == "answer"
        finally:
            await publisher.close()
        assert sfu.rss_bytes() < before + MEMORY_HEADROOM_BYTES

    asyncio.run(run())
    assert "Traceback" not in sfu.log(), sfu.log()[-4000:]
