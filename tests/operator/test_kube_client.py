"""The operator's API client reads the environment once, not on every request, and writes
only inside the acting window."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from switchboard_operator.kube import client as kube

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://apiserver.example:6443", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: not-a-secret}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
"""


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(path))
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return path


async def test_client_does_not_consult_netrc_or_proxy_variables_per_request(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = await kube.load_client()
    try:
        # aiohttp reads ~/.netrc and the proxy variables per request only when it trusts
        # the environment: this pins the private switch that load_client turns off.
        assert api.rest_client.pool_manager.trust_env is False
        assert api.rest_client.proxy is None
    finally:
        await api.close()


async def test_a_proxy_in_the_environment_is_still_used(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    api = await kube.load_client()
    try:
        assert api.rest_client.proxy == "http://proxy.example:3128"
    finally:
        await api.close()


async def test_no_proxy_exempts_the_api_server(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "apiserver.example")
    api = await kube.load_client()
    try:
        assert api.rest_client.proxy is None
    finally:
        await api.close()


async def test_writes_are_refused_before_they_are_sent_outside_the_acting_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C1: no write leaves a replica outside its acting window; reads and watches do."""
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.method)
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.replace("https://apiserver.example:6443", str(server.make_url(""))))
    monkeypatch.setenv("KUBECONFIG", str(path))
    acting = [True]
    api = kube.writes_only_while(await kube.load_client(), lambda: acting[0], lambda: 2.0)
    try:
        await kube.request(api, "PATCH", "/api/v1/namespaces/a/pods/b", body={})
        acting[0] = False
        with pytest.raises(kube.NotActing):
            await kube.request(api, "PATCH", "/api/v1/namespaces/a/pods/b", body={})
        with pytest.raises(kube.NotActing):
            await kube.delete_room(api, "a", "b")
        with pytest.raises(kube.NotActing):  # a raw request, as a failover's moves write
            await kube.patch_room_status(api, "a", "b", {"phase": "Scheduled"})
        await kube.request(api, "GET", "/api/v1/namespaces/a/pods/b")
        assert seen == ["PATCH", "GET"]
    finally:
        await api.close()
        await server.close()
