"""CORS for the WHIP/WHEP endpoints, so a web page served from another origin can publish
and play: preflights are answered here and every response exposes the WHIP headers.

Authorisation is the bearer join token (or the unguessable resource URL), never a cookie,
so any origin may call and credentials mode stays off.
"""

from collections.abc import Awaitable, Callable

from aiohttp import web

ALLOWED_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, If-Match"
EXPOSED_HEADERS = "Location, Link, ETag, Accept-Patch, Content-Type"
PREFLIGHT_MAX_AGE_SECONDS = "600"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def cors_middleware(path_prefixes: tuple[str, ...]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Middleware adding CORS to requests whose path starts with one of `path_prefixes`."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(path_prefixes):
            return await handler(request)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE_SECONDS
        else:
            try:
                response = await handler(request)
            except web.HTTPException as error:
                # Errors need the CORS headers too, or the page cannot read why it failed.
                response = error
                _add_common(response)
                raise
        _add_common(response)
        return response

    return middleware


def _add_common(response: web.StreamResponse) -> None:
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
