"""The join API's refusals as one exception, answered with an HTTP status and the JSON body
`{"error": {"code", "message"}}` (the `ErrorBody` model)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from http import HTTPStatus

from aiohttp import web

from switchboard_operator.joinapi.codes import ERROR_STATUSES, ErrorCode
from switchboard_operator.joinapi.models import ErrorBody, ErrorDetail


class JoinApiError(Exception):
    """A refusal: its code, a message for humans, and the status (the code's usual one
    unless given)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        status: HTTPStatus | None = None,
        reason: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        allowed = ERROR_STATUSES[code]
        if status is not None and status not in allowed:
            raise ValueError(f"{code} is not answered with {status}")
        self.code = code
        self.message = message
        self.status = status or allowed[0]
        self.reason = reason
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return error_response(
            self.code, self.message, status=self.status, reason=self.reason, headers=self.headers
        )


def error_response(
    code: ErrorCode,
    message: str,
    *,
    status: HTTPStatus | None = None,
    reason: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """The JSON error answer."""
    body = ErrorBody(error=ErrorDetail(code=code, message=message, reason=reason))
    return web.json_response(
        body.to_wire(), status=status or ERROR_STATUSES[code][0], headers=headers
    )


def retry_after_header(seconds: float) -> str:
    """`Retry-After` in whole seconds (HTTP allows no fractions), never 0 for a wait."""
    return str(max(1, math.ceil(seconds)))
