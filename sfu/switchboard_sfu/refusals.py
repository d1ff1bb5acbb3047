"""Why the SFU refuses a join, as one exception carrying a stable code and an HTTP status.

WebSocket signalling sends the code in an `error` message; WHIP/WHEP answer with the
status and a JSON body `{"error": code, "message": ...}`. Clients branch on the code.
"""

from enum import StrEnum
from http import HTTPStatus


class RefusalCode(StrEnum):
    """Stable, documented reasons a join is refused (sfu/PROTOCOL.md lists them)."""

    MISSING_TOKEN = "missing-token"
    INVALID_TOKEN = "invalid-token"
    TOKEN_EXPIRED = "token-expired"
    TOKEN_NOT_YET_VALID = "token-not-yet-valid"
    UNKNOWN_KEY = "unknown-key"
    WRONG_POD = "wrong-pod"
    WRONG_ROOM = "wrong-room"
    ROOM_NOT_ASSIGNED = "room-not-assigned"
    ROOM_CLOSING = "room-closing"
    ROOM_FULL = "room-full"
    MISSING_GRANT = "missing-grant"
    DRAINING = "draining"
    FENCED = "fenced"
    BAD_REQUEST = "bad-request"


_STATUS: dict[RefusalCode, HTTPStatus] = {
    RefusalCode.MISSING_TOKEN: HTTPStatus.UNAUTHORIZED,
    RefusalCode.INVALID_TOKEN: HTTPStatus.UNAUTHORIZED,
    RefusalCode.TOKEN_EXPIRED: HTTPStatus.UNAUTHORIZED,
    RefusalCode.TOKEN_NOT_YET_VALID: HTTPStatus.UNAUTHORIZED,
    RefusalCode.UNKNOWN_KEY: HTTPStatus.UNAUTHORIZED,
    RefusalCode.WRONG_POD: HTTPStatus.FORBIDDEN,
    RefusalCode.WRONG_ROOM: HTTPStatus.FORBIDDEN,
    RefusalCode.ROOM_NOT_ASSIGNED: HTTPStatus.FORBIDDEN,
    RefusalCode.ROOM_CLOSING: HTTPStatus.FORBIDDEN,
    RefusalCode.ROOM_FULL: HTTPStatus.FORBIDDEN,
    RefusalCode.MISSING_GRANT: HTTPStatus.FORBIDDEN,
    # 503: this pod cannot take the join, another one can (the client asks the join API).
    RefusalCode.DRAINING: HTTPStatus.SERVICE_UNAVAILABLE,
    RefusalCode.FENCED: HTTPStatus.SERVICE_UNAVAILABLE,
    RefusalCode.BAD_REQUEST: HTTPStatus.BAD_REQUEST,
}


class JoinRefused(Exception):
    """A join (WebSocket, WHIP or WHEP) that the SFU will not admit; nothing was allocated."""

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def http_status(self) -> HTTPStatus:
        return _STATUS[self.code]

    def to_json(self) -> dict[str, str]:
        return {"error": str(self.code), "message": self.message}
