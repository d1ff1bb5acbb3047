"""Short-lived TURN credentials in coturn's `use-auth-secret` (TURN REST API) scheme.

coturn accepts a username `<expiry-unix-time>:<identity>` whose password is
base64(HMAC-SHA1(shared secret, username)) until the expiry time, so whoever holds the
secret can mint credentials without a user database. The clock is an argument: this
module is pure and the SFU and the join API mint identical credentials from it.
"""

import base64
import hashlib
import hmac
from dataclasses import dataclass

USERNAME_SEPARATOR = ":"
"""coturn splits the username at this character to find the expiry timestamp."""


@dataclass(frozen=True)
class TurnCredential:
    """One username/password pair for a TURN server, valid until `expires_at` (Unix seconds)."""

    username: str
    password: str
    expires_at: int

    def ice_server(self, uris: list[str]) -> dict[str, object]:
        """The WebRTC `RTCIceServer` dictionary for `uris` with this credential."""
        return {"urls": list(uris), "username": self.username, "credential": self.password}


def turn_password(secret: bytes, username: str) -> str:
    """The password coturn expects for `username`: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret, username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def mint_turn_credential(
    secret: bytes, identity: str, now_unix: float, ttl_seconds: int
) -> TurnCredential:
    """Mint a credential for `identity` that coturn accepts for `ttl_seconds` after `now_unix`.

    `identity` is informational for coturn (it only parses the timestamp) but shows up in
    its logs, so callers pass a participant identity rather than anything secret.
    """
    if ttl_seconds <= 0:
        raise ValueError(f"TURN credential TTL must be positive, got {ttl_seconds}")
    if not secret:
        raise ValueError("TURN shared secret is empty")
    expires_at = int(now_unix) + ttl_seconds
    username = f"{expires_at}{USERNAME_SEPARATOR}{identity}" if identity else str(expires_at)
    return TurnCredential(
        username=username, password=turn_password(secret, username), expires_at=expires_at
    )
