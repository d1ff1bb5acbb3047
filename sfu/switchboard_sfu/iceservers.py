"""ICE servers the SFU hands to its clients: the Region's TURN servers with short-lived
credentials minted exactly as the join API mints them (coturn REST scheme).
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from switchboard_turn.credentials import mint_turn_credential

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IceServer:
    """One `RTCIceServer`: URIs and, for TURN, a credential."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def to_json(self) -> dict[str, object]:
        entry: dict[str, object] = {"urls": list(self.urls)}
        if self.username is not None:
            entry["username"] = self.username
            entry["credential"] = self.credential
        return entry

    def link_headers(self) -> list[str]:
        """`Link` header values for WHIP/WHEP responses (RFC 9725 section 4.6)."""
        values = []
        for url in self.urls:
            value = f'<{url}>; rel="ice-server"'
            if self.username is not None:
                value += (
                    f'; username="{_quote(self.username)}"'
                    f'; credential="{_quote(self.credential or "")}"'
                    '; credential-type="password"'
                )
            values.append(value)
        return values


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class IceServerProvider:
    """Mints the ICE server list for a participant from the TURN URIs and shared secret.

    The secret file is a mounted Secret that can rotate, so it is re-read when it changes.
    """

    def __init__(
        self, turn_uris: tuple[str, ...], secret_file: Path | None, ttl_seconds: int
    ) -> None:
        self._turn_uris = turn_uris
        self._secret_file = secret_file
        self._ttl_seconds = ttl_seconds
        self._secret: bytes | None = None
        self._secret_mtime_ns: int | None = None

    def for_identity(self, identity: str, now_unix: float) -> list[IceServer]:
        if not self._turn_uris:
            return []
        secret = self._read_secret()
        if not secret:
            # Without a secret TURN would refuse every allocation: hand out nothing rather
            # than credentials that cannot work.
            return []
        credential = mint_turn_credential(secret, identity, now_unix, self._ttl_seconds)
        return [
            IceServer(
                urls=self._turn_uris, username=credential.username, credential=credential.password
            )
        ]

    def _read_secret(self) -> bytes | None:
        if self._secret_file is None:
            return None
        try:
            mtime_ns = self._secret_file.stat().st_mtime_ns
            if mtime_ns != self._secret_mtime_ns:
                self._secret = self._secret_file.read_bytes().strip()
                self._secret_mtime_ns = mtime_ns
        except OSError as error:
            log.warning("TURN secret unreadable path=%s error=%s", self._secret_file, error)
            return None
        return self._secret
