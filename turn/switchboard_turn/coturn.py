"""coturn as Switchboard runs it: the turnserver arguments, the peer address filter that
keeps relays out of private networks, and the shared secrets coturn accepts.

Secrets never appear in arguments: coturn reads them from its SQLite user database
(`turn_secret` table), which it queries on every authentication, so a sidecar can rotate
them under a running server without dropping live relays. This module says what goes into
that table; the sidecar only copies it there.
"""

import ipaddress
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Final

from switchboard_api import ports
from switchboard_api.contract import SfuMounts

SECRET_SYNC_COMMAND: Final = "switchboard-turn-secret-sync"
"""Program that copies the mounted Secret's accepted secrets into coturn's user database
(and tells coturn to reload a renewed TLS certificate)."""

TLS_CERT_FILE: Final = "tls.crt"
TLS_KEY_FILE: Final = "tls.key"
"""Data keys of a `kubernetes.io/tls` Secret, as its volume holds them."""

# Keys of the Region's TURN Secret. The minted key's file is what SFU pods mount.
MINTED_SECRET_KEY: Final = PurePosixPath(SfuMounts.TURN_SECRET_FILE).name
"""The secret new credentials are minted with (and the one always accepted)."""
NEXT_SECRET_KEY: Final = "next"
"""During rotation phase one: the new secret, accepted but not yet minted."""
PREVIOUS_SECRET_KEY: Final = "previous"
"""During rotation phase two: the old secret, still accepted until its credentials expire."""

SECRET_MIN_LENGTH: Final = 16
SECRET_MAX_LENGTH: Final = 256
"""coturn stores secrets as varchar(256) and compares them as C strings."""
_SECRET_CHARACTERS = frozenset(string.ascii_letters + string.digits + string.punctuation)

USERDB_SECRET_TABLE_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS turn_secret ("
    "realm varchar(127) default '', value varchar(256), primary key (realm,value))"
)
"""coturn's own schema for the table (coturn's schema.sql), so either side may create it."""

DEFAULT_DENIED_PEER_CIDRS: Final[tuple[str, ...]] = (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private
    "100.64.0.0/10",  # carrier-grade NAT
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local, including cloud metadata endpoints
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments
    "192.168.0.0/16",  # private
    "198.18.0.0/15",  # benchmarking
    "240.0.0.0/4",  # reserved, and the limited broadcast address
    "::/128",  # unspecified
    "::1/128",  # loopback
    "::ffff:0:0/96",  # IPv4-mapped: would otherwise tunnel to the IPv4 ranges above
    "64:ff9b:1::/48",  # local-use NAT64
    "fc00::/7",  # unique local
    "fe80::/10",  # link-local
)
"""Peers a relay may never reach unless `allowedPeerCIDRs` admits them: without this a
TURN server is an open proxy into the cluster's and the node's networks."""

_LOOPBACK_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


class InvalidTurnSecret(ValueError):
    """A TURN shared secret coturn could not use, or a rotation step out of order."""


class SecretPhase(StrEnum):
    """Where a two-phase rotation of the TURN shared secret stands."""

    STEADY = "Steady"
    """One secret, accepted and minted."""
    ACCEPTING = "Accepting"
    """Phase one: TURN servers accept the next secret too; credentials still use the old."""
    MINTING = "Minting"
    """Phase two: credentials use the new secret; the previous one is accepted until the
    credentials minted with it have expired."""


def check_secret(value: str) -> str:
    """`value` if coturn can use it as a shared secret; InvalidTurnSecret (value not shown)."""
    if not SECRET_MIN_LENGTH <= len(value) <= SECRET_MAX_LENGTH:
        raise InvalidTurnSecret(
            f"a TURN secret must be {SECRET_MIN_LENGTH} to {SECRET_MAX_LENGTH} characters, "
            f"got {len(value)}"
        )
    if not set(value) <= _SECRET_CHARACTERS:
        raise InvalidTurnSecret("a TURN secret must be printable ASCII without whitespace")
    return value


@dataclass(frozen=True)
class TurnSecrets:
    """The shared secrets of one Region's TURN service and the rotation phase they imply.

    `minted` is the only secret credentials are minted with; `accepted` lists every secret
    coturn must accept, minted first. At most one of `next` and `previous` is set.
    """

    minted: str
    next: str | None = None
    previous: str | None = None

    def __post_init__(self) -> None:
        for value in (self.minted, self.next, self.previous):
            if value is not None:
                check_secret(value)
        if self.next is not None and self.previous is not None:
            raise InvalidTurnSecret("a rotation is either accepting a next secret or minting")
        if self.minted in (self.next, self.previous):
            raise InvalidTurnSecret("a rotation must change the secret")

    @property
    def phase(self) -> SecretPhase:
        if self.next is not None:
            return SecretPhase.ACCEPTING
        if self.previous is not None:
            return SecretPhase.MINTING
        return SecretPhase.STEADY

    @property
    def accepted(self) -> tuple[str, ...]:
        return tuple(s for s in (self.minted, self.next, self.previous) if s is not None)

    def begin_rotation(self, new: str) -> "TurnSecrets":
        """Phase one: coturn accepts `new` alongside the minted secret."""
        self._require(SecretPhase.STEADY, "begin a rotation")
        return TurnSecrets(minted=self.minted, next=new)

    def start_minting(self) -> "TurnSecrets":
        """Phase two: mint with the new secret once every TURN server accepts it."""
        self._require(SecretPhase.ACCEPTING, "start minting the next secret")
        assert self.next is not None
        return TurnSecrets(minted=self.next, previous=self.minted)

    def retire_previous(self) -> "TurnSecrets":
        """End of rotation: drop the old secret once its credentials have expired."""
        self._require(SecretPhase.MINTING, "retire the previous secret")
        return TurnSecrets(minted=self.minted)

    def files(self) -> dict[str, str]:
        """The Secret's data, key by key (plain text; the Kubernetes layer encodes it)."""
        files = {MINTED_SECRET_KEY: self.minted}
        if self.next is not None:
            files[NEXT_SECRET_KEY] = self.next
        if self.previous is not None:
            files[PREVIOUS_SECRET_KEY] = self.previous
        return files

    @classmethod
    def from_files(cls, files: Mapping[str, str]) -> "TurnSecrets":
        """Read back what `files` wrote; unknown keys are ignored."""
        if MINTED_SECRET_KEY not in files:
            raise InvalidTurnSecret(f"the TURN Secret has no {MINTED_SECRET_KEY!r} key")
        return cls(
            minted=files[MINTED_SECRET_KEY],
            next=files.get(NEXT_SECRET_KEY),
            previous=files.get(PREVIOUS_SECRET_KEY),
        )

    def _require(self, phase: SecretPhase, action: str) -> None:
        if self.phase is not phase:
            raise InvalidTurnSecret(f"cannot {action} in phase {self.phase}, only in {phase}")

    def __repr__(self) -> str:
        # Dataclass reprs end up in logs and tracebacks: never show the values.
        return f"TurnSecrets(phase={self.phase}, accepted={len(self.accepted)})"


def userdb_secret_rows(realm: str, secrets: TurnSecrets) -> list[tuple[str, str]]:
    """The `(realm, value)` rows of coturn's `turn_secret` table for `secrets`."""
    return [(realm, value) for value in secrets.accepted]


def cidr_to_range(cidr: str) -> str:
    """A CIDR in coturn's peer-ip syntax: `first-last`, or the address alone for one host."""
    network = ipaddress.ip_network(cidr, strict=False)
    first, last = network.network_address, network.broadcast_address
    return str(first) if first == last else f"{first}-{last}"


def admits_loopback(cidrs: Iterable[str]) -> bool:
    """True if any of `cidrs` overlaps a loopback range (coturn then needs an extra flag)."""
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr, strict=False)
        if any(
            network.version == loopback.version and network.overlaps(loopback)
            for loopback in _LOOPBACK_NETWORKS
        ):
            return True
    return False


@dataclass(frozen=True)
class TlsFiles:
    """Where the TLS certificate chain and key are mounted in the coturn container."""

    port: int
    cert_path: str
    key_path: str


@dataclass(frozen=True)
class CoturnSettings:
    """What a TURN pod's turnserver is told; everything except the secrets."""

    realm: str
    listening_port: int
    relay_port_min: int
    relay_port_max: int
    userdb_path: str
    pidfile_path: str
    tls: TlsFiles | None = None
    allowed_peer_cidrs: Sequence[str] = ()
    denied_peer_cidrs: Sequence[str] = DEFAULT_DENIED_PEER_CIDRS
    prometheus: bool = False
    listening_ip: str | None = None
    """Address to listen on and relay from; may be a `$(VAR)` the kubelet expands."""

    @property
    def lowest_port(self) -> int:
        """The lowest port turnserver binds (below 1024 it needs the privilege to do so)."""
        candidates = [self.listening_port, self.relay_port_min]
        if self.tls is not None:
            candidates.append(self.tls.port)
        if self.prometheus:
            candidates.append(ports.TURN_PROMETHEUS_PORT)
        return min(candidates)


def turnserver_args(settings: CoturnSettings) -> list[str]:
    """turnserver's command-line arguments for `settings`, in a stable order."""
    args = [
        # Never read a config file: the image's or the node's turnserver.conf would add
        # options (Debian's sends the log to syslog instead of stdout).
        "-n",
        f"--realm={settings.realm}",
        f"--listening-port={settings.listening_port}",
        f"--min-port={settings.relay_port_min}",
        f"--max-port={settings.relay_port_max}",
    ]
    if settings.listening_ip is not None:
        args += [f"--listening-ip={settings.listening_ip}", f"--relay-ip={settings.listening_ip}"]
    args += [
        # TURN REST API credentials, checked against the secrets in the user database.
        "--use-auth-secret",
        f"--userdb={settings.userdb_path}",
        "--fingerprint",
        "--stale-nonce=600",
        "--no-cli",
        "--no-software-attribute",
        # Smaller STUN responses: less use as a reflection amplifier.
        "--no-rfc5780",
        "--no-stun-backward-compatibility",
        "--response-origin-only-with-rfc5780",
        "--no-tlsv1",
        "--no-tlsv1_1",
        "--no-dtls",
        "--log-file=stdout",
        f"--pidfile={settings.pidfile_path}",
    ]
    if settings.tls is None:
        args.append("--no-tls")
    else:
        args += [
            f"--tls-listening-port={settings.tls.port}",
            f"--cert={settings.tls.cert_path}",
            f"--pkey={settings.tls.key_path}",
        ]
    if settings.prometheus:
        args += ["--prometheus", f"--prometheus-port={ports.TURN_PROMETHEUS_PORT}"]
    args += peer_filter_args(settings.allowed_peer_cidrs, settings.denied_peer_cidrs)
    return args


def peer_filter_args(
    allowed_cidrs: Sequence[str], denied_cidrs: Sequence[str] = DEFAULT_DENIED_PEER_CIDRS
) -> list[str]:
    """The arguments that decide which peers relays may reach.

    coturn admits an address that any allowed range covers, even inside a denied range;
    loopback peers are refused before those lists are consulted unless explicitly enabled.
    """
    args = ["--no-multicast-peers"]
    if admits_loopback(allowed_cidrs):
        args.append("--allow-loopback-peers")
    args += [f"--denied-peer-ip={cidr_to_range(cidr)}" for cidr in denied_cidrs]
    args += [f"--allowed-peer-ip={cidr_to_range(cidr)}" for cidr in allowed_cidrs]
    return args
