"""The capacity report receiver: authenticate, apply to the capacity picture, answer.

No API-server call per report: the token is verified against the cached JWKS, and the
response (assignments, drain, close) comes from the in-memory picture. The token is
checked before the body is read, and the body is read only up to MAX_REPORT_BYTES, so a
caller without a pod's token costs a signature check and nothing more.
"""

from __future__ import annotations

import logging
import time
from typing import Final, Protocol

import pydantic
from aiohttp import web

from switchboard_api.contract import CapacityReport, ReportResponse
from switchboard_operator.logic.reportauth import (
    ReportAuthError,
    ReporterIdentity,
    check_reporter,
    verify_report_token,
)
from switchboard_operator.metrics import OperatorMetrics
from switchboard_operator.reportapi.jwks import JwksCache
from switchboard_operator.reportapi.refusals import UNTRUSTED, ReportRefusals

log = logging.getLogger(__name__)
MAX_REPORT_BYTES: Final = 1 << 20
"""A report of thousands of rooms fits many times over."""
_READ_CHUNK_BYTES: Final = 64 * 1024


class ReportSink(Protocol):
    @property
    def ready(self) -> bool:
        """Whether placements are known: before that, an answer would be from an empty
        picture and tell the SFU to drop every room it serves."""
        ...

    def trusts(self, identity: ReporterIdentity, report: CapacityReport) -> bool:
        """Whether the authenticated pod is an SFU pod the operator created for the
        report's Region."""
        ...

    def leading(self, report: CapacityReport) -> bool:
        """Whether this replica acts as leader and may answer `report` (a report showing
        a newer term makes it step down)."""
        ...

    def on_report(self, report: CapacityReport, now: float) -> ReportResponse: ...


class _BodyTooLarge(Exception):
    pass


class _Refused(Exception):
    """A report answered with an error instead of the picture's response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.response = web.json_response(
            {"error": {"code": code, "message": message}}, status=status
        )


async def read_bounded(request: web.Request, limit: int) -> bytes:
    """The request body, refused (_BodyTooLarge) as soon as it passes `limit` bytes: a
    declared length is checked before anything is read, a chunked body while it arrives."""
    if request.content_length is not None and request.content_length > limit:
        raise _BodyTooLarge
    body = bytearray()
    async for chunk in request.content.iter_chunked(_READ_CHUNK_BYTES):
        body += chunk
        if len(body) > limit:
            raise _BodyTooLarge
    return bytes(body)


class ReportReceiver:
    def __init__(
        self,
        jwks: JwksCache,
        sink: ReportSink,
        refusals: ReportRefusals,
        metrics: OperatorMetrics,
    ) -> None:
        self._jwks = jwks
        self._sink = sink
        self._refusals = refusals
        self._metrics = metrics

    async def handle(self, request: web.Request) -> web.Response:
        try:
            identity = await self._authenticate(request)
            if not self._sink.ready:
                # Unacknowledged, so the SFU keeps its rooms and reports again next interval
                # (start-up and a leader change take far less than the lease); nor is it
                # known yet which pods are trusted.
                raise _Refused(503, "starting", "the control plane is restoring room placements")
            report = await self._read_report(request, identity)
            if not self._sink.leading(report):
                # Unacknowledged and unapplied: only an acting leader answers (C1).
                raise _Refused(503, "not_leading", "this replica is not the acting leader")
        except _Refused as refusal:
            self._refusals.refused(refusal.code)
            return refusal.response
        response = self._sink.on_report(report, time.time())
        self._metrics.report_received(report.region, response.acknowledged)
        return web.Response(
            body=response.model_dump_json(by_alias=True), content_type="application/json"
        )

    async def _authenticate(self, request: web.Request) -> ReporterIdentity:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _Refused(401, "missing_token", "a Bearer ServiceAccount token is required")
        try:
            return await self._verify(token)
        except ReportAuthError as error:
            # Nothing of the body is read or logged: it speaks for no one yet.
            log.warning("capacity report refused reason=%s", error)
            raise _Refused(401, "unauthenticated", str(error)) from None

    async def _read_report(
        self, request: web.Request, identity: ReporterIdentity
    ) -> CapacityReport:
        """The body, read only now that it is known whose it is, and only up to the cap."""
        try:
            body = await read_bounded(request, MAX_REPORT_BYTES)
        except _BodyTooLarge:
            log.warning(
                "capacity report refused pod=%s/%s reason=larger than %d bytes",
                identity.namespace,
                identity.pod_name,
                MAX_REPORT_BYTES,
            )
            raise _Refused(
                413, "too_large", f"a report must not exceed {MAX_REPORT_BYTES} bytes"
            ) from None
        try:
            report = CapacityReport.model_validate_json(body)
        except pydantic.ValidationError as error:
            fields = ",".join(".".join(map(str, e["loc"])) for e in error.errors())
            raise _Refused(400, "invalid_report", f"invalid report fields: {fields}") from None
        try:
            check_reporter(identity, report)
        except ReportAuthError as error:
            log.warning(
                "capacity report refused pod=%s/%s reason=%s",
                identity.namespace,
                identity.pod_name,
                error,
            )
            raise _Refused(403, "forbidden", str(error)) from None
        if not self._sink.trusts(identity, report):
            # A real pod with a real token, but not one the operator created: labels,
            # ownerReferences and a ServiceAccount can be copied, a recorded UID cannot.
            message = (
                f"pod {identity.namespace}/{identity.pod_name} (uid {identity.pod_uid}) is "
                f"not an SFU pod the operator created for Region {report.region!r}"
            )
            log.warning(
                "capacity report refused pod=%s/%s uid=%s region=%s reason=untrusted pod",
                identity.namespace,
                identity.pod_name,
                identity.pod_uid,
                report.region,
            )
            self._refusals.untrusted(
                identity, f"Capacity report refused: this {message}. It gets no rooms."
            )
            raise _Refused(403, UNTRUSTED, message)
        return report

    async def _verify(self, token: str) -> ReporterIdentity:
        try:
            return verify_report_token(token, self._jwks.jwks, self._jwks.issuer, time.time())
        except ReportAuthError as error:
            # A key we do not know yet may be a rotation: refetch (throttled) and retry once.
            if error.unknown_key and await self._jwks.refresh():
                return verify_report_token(token, self._jwks.jwks, self._jwks.issuer, time.time())
            raise
