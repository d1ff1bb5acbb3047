"""The SFU's configuration, read once from the environment the operator gives the pod."""

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import overload
from urllib.parse import urlsplit

from switchboard_api import defaults
from switchboard_api.contract import MAX_REPORT_INTERVAL_SECONDS, SfuEnv
from switchboard_api.ports import SFU_METRICS_PORT, SFU_PEER_PORT, SFU_SIGNALLING_PORT
from switchboard_tls import CertificateFiles

PREVIOUS_CONTRACT_ENV = "SWITCHBOARD_TEST_PREVIOUS_CONTRACT"
"""Tests only, never set by the operator: `1` makes this SFU speak the contract as it was
before the lease protocol, to test a rolling update with old and new SFU versions mixed."""


class ConfigError(ValueError):
    """The environment does not describe a runnable SFU (message names the variable)."""


@dataclass(frozen=True)
class SfuConfig:
    """Everything the SFU process is told about itself and its control plane."""

    region: str
    pod_name: str
    pod_namespace: str
    pod_uid: str
    announce_address: str
    """The one host address offered in ICE candidates."""
    join_keys_dir: Path
    pod_ip: str | None = None
    listen_host: str = "0.0.0.0"
    signalling_port: int = SFU_SIGNALLING_PORT
    peer_port: int = SFU_PEER_PORT
    """Where the pod answers its peers' lease checks (with reports and a pod IP only)."""
    metrics_port: int | None = SFU_METRICS_PORT
    """Internal /metrics listener on `listen_host`; None: no listener."""
    capacity: float = defaults.SFU_CAPACITY_PER_POD
    report_url: str | None = None
    """None runs the SFU stand-alone: no reports, no fencing (local development)."""
    report_interval_seconds: float = defaults.REPORT_INTERVAL_SECONDS
    report_token_file: Path | None = None
    report_ca_file: Path | None = None
    """The CA the report receiver's certificate must chain to; None: the trust store."""
    turn_uris: tuple[str, ...] = ()
    turn_secret_file: Path | None = None
    turn_credential_ttl_seconds: int = defaults.TURN_CREDENTIAL_TTL_SECONDS
    drain_grace_seconds: float = defaults.SFU_DRAIN_GRACE_SECONDS
    join_api_url: str | None = None
    """Base URL of the join API that `migrate` messages send clients back to (no `rejoin`
    without it)."""
    failover_timeout_seconds: float = defaults.FAILOVER_TIMEOUT_SECONDS
    """Fencing timeout until the first report response names the control plane's own."""
    default_max_participants: int = defaults.ROOM_MAX_PARTICIPANTS
    """Participant limit of a room that joined before its assignment arrived."""
    tls: CertificateFiles | None = None
    """The certificate the HTTP port serves HTTPS/WSS with; None: plain HTTP."""
    previous_contract: bool = False
    """Behave as an SFU of the previous contract version (PREVIOUS_CONTRACT_ENV): announce
    no peer endpoint, send no `term`/`ackedSequence`, ignore `term`, `leaseSeconds` and
    `peers`, and fence on `failoverTimeoutSeconds` alone."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "SfuConfig":
        """Read the configuration from `env` (normally `os.environ`)."""
        reader = _EnvReader(env)
        config = cls(
            region=reader.required(SfuEnv.REGION),
            pod_name=reader.required(SfuEnv.POD_NAME),
            pod_namespace=reader.required(SfuEnv.POD_NAMESPACE),
            pod_uid=reader.required(SfuEnv.POD_UID),
            pod_ip=reader.optional(SfuEnv.POD_IP),
            announce_address=reader.ip_address(SfuEnv.ANNOUNCE_ADDRESS),
            join_keys_dir=Path(reader.required(SfuEnv.JOIN_KEYS_DIR)),
            listen_host=reader.optional(SfuEnv.LISTEN_HOST) or cls.listen_host,
            signalling_port=reader.port(SfuEnv.SIGNALLING_PORT, SFU_SIGNALLING_PORT),
            peer_port=reader.port(SfuEnv.PEER_PORT, SFU_PEER_PORT),
            metrics_port=reader.port(SfuEnv.METRICS_PORT, SFU_METRICS_PORT, allow_off=True),
            capacity=reader.positive_float(SfuEnv.CAPACITY, defaults.SFU_CAPACITY_PER_POD),
            report_url=reader.optional(SfuEnv.REPORT_URL),
            report_interval_seconds=reader.positive_float(
                SfuEnv.REPORT_INTERVAL_SECONDS, defaults.REPORT_INTERVAL_SECONDS
            ),
            report_token_file=reader.path(SfuEnv.REPORT_TOKEN_FILE),
            report_ca_file=reader.path(SfuEnv.REPORT_CA_FILE),
            turn_uris=reader.csv(SfuEnv.TURN_URIS),
            turn_secret_file=reader.path(SfuEnv.TURN_SECRET_FILE),
            turn_credential_ttl_seconds=int(
                reader.positive_float(
                    SfuEnv.TURN_CREDENTIAL_TTL_SECONDS, defaults.TURN_CREDENTIAL_TTL_SECONDS
                )
            ),
            drain_grace_seconds=reader.non_negative_float(
                SfuEnv.DRAIN_GRACE_SECONDS, defaults.SFU_DRAIN_GRACE_SECONDS
            ),
            join_api_url=reader.base_url(SfuEnv.JOIN_API_PUBLIC_URL),
            tls=reader.certificate_files(SfuEnv.TLS_CERT_FILE, SfuEnv.TLS_KEY_FILE),
            previous_contract=env.get(PREVIOUS_CONTRACT_ENV) == "1",
        )
        if config.report_interval_seconds > MAX_REPORT_INTERVAL_SECONDS:
            raise ConfigError(
                f"{SfuEnv.REPORT_INTERVAL_SECONDS} must be at most "
                f"{MAX_REPORT_INTERVAL_SECONDS} s, got {config.report_interval_seconds}"
            )
        if config.peer_port == config.signalling_port:
            raise ConfigError(
                f"{SfuEnv.PEER_PORT} and {SfuEnv.SIGNALLING_PORT} must differ, "
                f"both are {config.peer_port}"
            )
        if config.metrics_port in (config.signalling_port, config.peer_port):
            raise ConfigError(
                f"{SfuEnv.METRICS_PORT} must differ from {SfuEnv.SIGNALLING_PORT} and "
                f"{SfuEnv.PEER_PORT}, got {config.metrics_port}"
            )
        if config.turn_uris and config.turn_secret_file is None:
            raise ConfigError(f"{SfuEnv.TURN_URIS} is set but {SfuEnv.TURN_SECRET_FILE} is not")
        return config


class _EnvReader:
    """Typed access to environment variables with errors that name the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def optional(self, name: SfuEnv) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def required(self, name: SfuEnv) -> str:
        value = self.optional(name)
        if value is None:
            raise ConfigError(f"{name} is required")
        return value

    def ip_address(self, name: SfuEnv) -> str:
        value = self.required(name)
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ConfigError(f"{name} must be an IP address, got {value!r}") from None

    def path(self, name: SfuEnv) -> Path | None:
        value = self.optional(name)
        return Path(value) if value else None

    def certificate_files(self, cert: SfuEnv, key: SfuEnv) -> CertificateFiles | None:
        cert_path, key_path = self.path(cert), self.path(key)
        if (cert_path is None) != (key_path is None):
            raise ConfigError(f"{cert} and {key} must be set together (or neither)")
        if cert_path is None or key_path is None:
            return None
        return CertificateFiles(cert_path, key_path)

    def base_url(self, name: SfuEnv) -> str | None:
        """An http(s) URL that paths are appended to."""
        value = self.optional(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
        if parts.query or parts.fragment:
            raise ConfigError(f"{name} must have no query or fragment, got {value!r}")
        return value

    def csv(self, name: SfuEnv) -> tuple[str, ...]:
        value = self.optional(name) or ""
        return tuple(item.strip() for item in value.split(",") if item.strip())

    def _number(self, name: SfuEnv, default: float) -> float:
        value = self.optional(name)
        if value is None:
            return float(default)
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {value!r}") from None

    def positive_float(self, name: SfuEnv, default: float) -> float:
        number = self._number(name, default)
        if number <= 0:
            raise ConfigError(f"{name} must be positive, got {number}")
        return number

    def non_negative_float(self, name: SfuEnv, default: float) -> float:
        number = self._number(name, default)
        if number < 0:
            raise ConfigError(f"{name} must not be negative, got {number}")
        return number

    @overload
    def port(self, name: SfuEnv, default: int) -> int: ...
    @overload
    def port(self, name: SfuEnv, default: int, *, allow_off: bool) -> int | None: ...
    def port(self, name: SfuEnv, default: int, *, allow_off: bool = False) -> int | None:
        """A TCP port number; with `allow_off`, `0` means no listener (None)."""
        number = self._number(name, default)
        if allow_off and number == 0:
            return None
        if not number.is_integer() or not 0 < number < 65536:
            raise ConfigError(f"{name} must be a TCP port number, got {number}")
        return int(number)
