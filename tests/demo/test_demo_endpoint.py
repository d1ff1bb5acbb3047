"""The demo endpoint of the dev tooling: it joins rooms of the demo namespace with the demo
key, hands the page only the join API's answer, and refuses what is not a demo join."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from switchboard_dev.demo.apikey import DEMO_NAMESPACE
from switchboard_dev.demo.server import DEMO_JOIN_PATH, MAX_BODY_BYTES, DemoServer, demo_app

KEY = "demo-key-0123456789abcdef"
ANSWER = {"room": "demo/hello", "pod": "p", "url": "http://127.0.0.1:7880", "token": "t"}


class FakeJoinApi:
    """Records what reaches the join API and answers as configured."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict, str]] = []
        self.status = 200
        self.body: dict = ANSWER

    async def join(self, request: web.Request) -> web.Response:
        self.requests.append(
            (request.path, await request.json(), request.headers.get("Authorization", ""))
        )
        return web.json_response(self.body, status=self.status, headers={"Retry-After": "3"})


@pytest.fixture
async def join_api() -> AsyncIterator[tuple[FakeJoinApi, str]]:
    fake = FakeJoinApi()
    app = web.Application()
    app.router.add_post("/v1/namespaces/{namespace}/rooms/{name}/join", fake.join)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def page(join_api) -> AsyncIterator[TestClient]:
    _, url = join_api
    client = TestClient(TestServer(demo_app(url, KEY), host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


async def test_joins_a_demo_room_with_the_demo_key_and_hands_back_the_answer_only(join_api, page):
    fake, _ = join_api

    response = await page.post(DEMO_JOIN_PATH, json={"room": "hello", "identity": "alice"})

    assert response.status == 200
    body = await response.json()
    assert body == ANSWER
    assert KEY not in await response.text()
    [(path, sent, authorization)] = fake.requests
    assert path == f"/v1/namespaces/{DEMO_NAMESPACE}/rooms/hello/join"
    assert authorization == f"Bearer {KEY}"
    assert sent["identity"] == "alice"
    assert "grants" not in sent  # the join API's defaults: publish, subscribe, data


async def test_watch_only_joins_may_only_subscribe(join_api, page):
    fake, _ = join_api

    await page.post(DEMO_JOIN_PATH, json={"room": "hello", "identity": "carol", "watch": True})

    [(_, sent, _)] = fake.requests
    assert sent["grants"] == {"publish": False, "subscribe": True, "data": False}


async def test_join_api_errors_reach_the_page_as_they_are(join_api, page):
    fake, _ = join_api
    fake.status = 429
    fake.body = {"error": {"code": "rate_limited", "message": "slow down"}}

    response = await page.post(DEMO_JOIN_PATH, json={"room": "hello", "identity": "alice"})

    assert response.status == 429
    assert response.headers["Retry-After"] == "3"
    assert (await response.json())["error"]["code"] == "rate_limited"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"room": "../../other/rooms/x", "identity": "alice"}, "invalid_request"),
        ({"room": "Hello", "identity": "alice"}, "invalid_request"),
        ({"room": "hello\n", "identity": "alice"}, "invalid_request"),
        ({"room": "hello", "identity": " "}, "invalid_request"),
        ({"room": "hello", "identity": "alice", "watch": "yes"}, "invalid_request"),
        (["hello"], "invalid_request"),
    ],
)
async def test_only_a_room_name_of_the_demo_namespace_is_accepted(join_api, page, body, code):
    fake, _ = join_api

    response = await page.post(DEMO_JOIN_PATH, json=body)

    assert response.status == 400
    assert (await response.json())["error"]["code"] == code
    assert fake.requests == []


async def test_a_body_beyond_the_limit_is_refused_in_the_apis_shape(join_api, page):
    fake, _ = join_api

    response = await page.post(
        DEMO_JOIN_PATH, json={"room": "hello", "identity": "x" * MAX_BODY_BYTES}
    )

    assert response.status == 413
    assert (await response.json())["error"]["code"] == "body_too_large"
    assert fake.requests == []


async def test_a_form_post_from_another_site_is_refused(join_api, page):
    fake, _ = join_api

    response = await page.post(DEMO_JOIN_PATH, data={"room": "hello", "identity": "mallory"})

    assert response.status == 415
    assert fake.requests == []


async def test_an_unreachable_join_api_is_a_clear_error():
    client = TestClient(TestServer(demo_app("http://127.0.0.1:9", KEY), host="127.0.0.1"))
    await client.start_server()
    try:
        response = await client.post(DEMO_JOIN_PATH, json={"room": "hello", "identity": "a"})
        assert response.status == 502
        assert (await response.json())["error"]["code"] == "join_api_unreachable"
    finally:
        await client.close()


async def test_the_page_is_served_from_the_root(page):
    response = await page.get("/")
    assert response.status == 200
    html = await response.text()
    for asset in ("/page/demo.js", "/page/demo.css"):
        assert asset in html
        assert (await page.get(asset)).status == 200


def test_the_threaded_server_serves_on_loopback_and_stops():
    server = DemoServer("http://127.0.0.1:9", KEY).start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url, timeout=5) as response:
            assert b"Switchboard demo" in response.read()
    finally:
        server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url, timeout=5)
