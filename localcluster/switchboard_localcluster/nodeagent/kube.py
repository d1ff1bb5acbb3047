"""A thin JSON-in, JSON-out Kubernetes API client over kubernetes_asyncio's transport.

The agent works with raw API objects (dicts): statuses are compared field by field with what
the server stored, which generated model classes would blur.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
REQUEST_TIMEOUT_SECONDS = 30
# The server ends a watch at timeoutSeconds; the client gives it this long on top.
WATCH_TIMEOUT_SLACK_SECONDS = 30


class KubeError(Exception):
    def __init__(self, status: int, body: str) -> None:
        self.status = status
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {}
        self.reason = parsed.get("reason", "") if isinstance(parsed, dict) else ""
        self.message = parsed.get("message", body) if isinstance(parsed, dict) else body
        super().__init__(f"HTTP {status} {self.reason}: {self.message}")

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def gone(self) -> bool:
        return self.status == 410


class KubeUnreachable(OSError):
    """The API server could not be reached, or dropped the connection before its answer was
    whole (it was killed or restarted mid-request). Transient, as a refused connection is, and
    an OSError like one, so that every caller that rides out the one rides out the other.
    Before it was, an API server killed while a pod's volume refresh was in flight ended the
    pod's worker, and with it the pod's running containers."""


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = api_client

    @classmethod
    async def from_kubeconfig(cls, path: Path) -> Kube:
        configuration = client.Configuration()
        await config.load_kube_config(
            config_file=str(path), client_configuration=configuration, persist_config=False
        )
        return cls(client.ApiClient(configuration=configuration))

    @property
    def server(self) -> str:
        return str(self._api.configuration.host)

    async def close(self) -> None:
        await self._api.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        request_timeout: float | None = REQUEST_TIMEOUT_SECONDS,
    ) -> Any:
        with _unreachable(f"{method} {path}"):
            response = await self._send(
                method,
                path,
                body=body,
                params=params,
                content_type=content_type,
                request_timeout=request_timeout,
            )
            try:
                text = await response.text()
            finally:
                response.release()
        if not 200 <= response.status < 300:
            raise KubeError(response.status, text)
        return json.loads(text) if text else None

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", path)
        except KubeError as error:
            if error.not_found:
                return None
            raise

    async def watch(
        self, path: str, params: Mapping[str, Any], timeout_seconds: int
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events ({type, object}) until the server ends the watch."""
        query = {**params, "watch": "true", "timeoutSeconds": str(timeout_seconds)}
        with _unreachable(f"watch {path}"):
            response = await self._send(
                "GET",
                path,
                params=query,
                request_timeout=timeout_seconds + WATCH_TIMEOUT_SLACK_SECONDS,
            )
            try:
                if response.status != 200:
                    raise KubeError(response.status, await response.text())
                buffer = b""
                # Split by hand: aiohttp's readline limits line length below large objects.
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield json.loads(line)
            finally:
                response.release()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        request_timeout: float | None = REQUEST_TIMEOUT_SECONDS,
    ) -> Any:
        return await self._api.call_api(
            path,
            method,
            query_params=list((params or {}).items()),
            header_params={"Content-Type": content_type, "Accept": JSON},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=request_timeout,
        )


@contextlib.contextmanager
def _unreachable(what: str) -> Iterator[None]:
    """aiohttp's errors of a connection that failed or dropped (before the answer, mid-answer
    or mid-watch) as KubeUnreachable."""
    try:
        yield
    except aiohttp.ClientError as error:
        raise KubeUnreachable(f"{what}: {error!r}") from error
