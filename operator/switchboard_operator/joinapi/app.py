"""The join API as an aiohttp sub-application, mounted by the operator's HTTP server at
`JOIN_API_PREFIX`: `root.add_subapp(JOIN_API_PREFIX, join_api_app(...))`."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from switchboard_api.contract import JOIN_API_PREFIX, JOIN_PATH_TEMPLATE
from switchboard_operator.joinapi.apikeys import ApiKeyStore
from switchboard_operator.joinapi.codes import ERROR_STATUSES, ErrorCode
from switchboard_operator.joinapi.errors import error_response
from switchboard_operator.joinapi.handler import Clock, JoinApiSettings, JoinHandler
from switchboard_operator.joinapi.port import RoomPlacements
from switchboard_operator.logic.ratelimit import RateLimiter
from switchboard_operator.metrics import OperatorMetrics

log = logging.getLogger(__name__)

# The paths are the contract's (SFUs name a room's join endpoint in `migrate` messages);
# the sub-application is mounted at JOIN_API_PREFIX and nothing else lives below it.
JOIN_ROUTE: Final = JOIN_PATH_TEMPLATE.removeprefix(JOIN_API_PREFIX)
"""The join route inside the sub-application."""


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Routing failures and unexpected exceptions answered in the API's error shape."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return error_response(ErrorCode.NOT_FOUND, f"no endpoint at {request.raw_path}")
    except web.HTTPMethodNotAllowed as error:
        response = error_response(
            ErrorCode.METHOD_NOT_ALLOWED, f"{request.method} is not allowed here"
        )
        response.headers["Allow"] = ",".join(sorted(error.allowed_methods))
        return response
    except web.HTTPException:
        raise
    except Exception:
        log.exception("join api failed method=%s path=%s", request.method, request.raw_path)
        return error_response(ErrorCode.INTERNAL_ERROR, "the control plane failed; retry later")


def counted(metrics: OperatorMetrics, clock: Clock) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Every answer counted by status code, with its latency (errors included: the
    middleware sits outside `json_errors`, so it sees what the client sees)."""

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = clock()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as error:
            status = error.status
            raise
        finally:
            metrics.join_answered(status, clock() - started)

    return count


def join_api_app(
    placements: RoomPlacements,
    keys: ApiKeyStore,
    *,
    settings: JoinApiSettings | None = None,
    limiter: RateLimiter | None = None,
    metrics: OperatorMetrics | None = None,
    wall_clock: Clock = time.time,
    monotonic_clock: Clock = time.monotonic,
) -> web.Application:
    """The join API over `placements`, authenticating with `keys`.

    Pass `limiter` to share rate-limit state with the caller (e.g. to `retain` only live
    keys); the clocks exist for tests and default to the system's.
    """
    handler = JoinHandler(
        placements,
        keys,
        settings=settings or JoinApiSettings(),
        limiter=limiter or RateLimiter(),
        wall_clock=wall_clock,
        monotonic_clock=monotonic_clock,
    )
    middlewares = [json_errors]
    if metrics is not None:
        metrics.expect_join_statuses(
            {HTTPStatus.OK, *(s for statuses in ERROR_STATUSES.values() for s in statuses)}
        )
        middlewares.insert(0, counted(metrics, monotonic_clock))
    app = web.Application(middlewares=middlewares)
    app.router.add_post(JOIN_ROUTE, handler.join)
    return app
