"""The capacity report receiver: authenticate, apply to the capacity picture, answer.

No API-server call per report: the token is verified against the cached JWKS, and the
response (assignments, drain, close) comes from the in-memory picture.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

import pydantic
from aiohttp import web

from switchboard_api.contract import CapacityReport, ReportResponse
from switchboard_operator.logic.reportauth import (
    ReportAuthError,
    ReporterIdentity,
    check_reporter,
    verify_report_token,
)
from switchboard_operator.reportapi.jwks import JwksCache

log = logging.getLogger(__name__)
MAX_REPORT_BYTES = 1 << 20


class ReportSink(Protocol):
    @property
    def ready(self) -> bool:
        """Whether placements are known: before that, an answer would be from an empty
        picture and tell the SFU to drop every room it serves."""
        ...

    def on_report(self, report: CapacityReport, now: float) -> ReportResponse: ...


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


class ReportReceiver:
    def __init__(self, jwks: JwksCache, sink: ReportSink) -> None:
        self._jwks = jwks
        self._sink = sink

    async def handle(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return _error(401, "missing_token", "a Bearer ServiceAccount token is required")
        token = header.removeprefix("Bearer ").strip()
        if request.content_length is not None and request.content_length > MAX_REPORT_BYTES:
            return _error(413, "too_large", "report too large")
        try:
            report = CapacityReport.model_validate_json(await request.read())
        except pydantic.ValidationError as error:
            fields = ",".join(".".join(map(str, e["loc"])) for e in error.errors())
            return _error(400, "invalid_report", f"invalid report fields: {fields}")
        try:
            identity = await self._verify(token)
            check_reporter(identity, report)
        except ReportAuthError as error:
            log.warning(
                "capacity report refused pod=%s/%s reason=%s",
                report.namespace,
                report.pod_name,
                error,
            )
            return _error(403, "forbidden", str(error))
        if not self._sink.ready:
            # Unacknowledged, so the SFU keeps its rooms and reports again next interval
            # (start-up and a leader change take far less than the failover timeout).
            return _error(503, "starting", "the control plane is restoring room placements")
        response = self._sink.on_report(report, time.time())
        return web.Response(
            body=response.model_dump_json(by_alias=True), content_type="application/json"
        )

    async def _verify(self, token: str) -> ReporterIdentity:
        try:
            return verify_report_token(token, self._jwks.jwks, self._jwks.issuer, time.time())
        except ReportAuthError as error:
            # A key we do not know yet may be a rotation: refetch (throttled) and retry once.
            if error.unknown_key and await self._jwks.refresh():
                return verify_report_token(token, self._jwks.jwks, self._jwks.issuer, time.time())
            raise
