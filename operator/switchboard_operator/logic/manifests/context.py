"""What the manifest builders need to know about the operator itself, beyond the Region."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, get_args
from urllib.parse import urlsplit

from switchboard_api import defaults, labels
from switchboard_api.contract import MAX_REPORT_INTERVAL_SECONDS, JoinKeySecrets
from switchboard_api.kube_types import PullPolicy

ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]

MIN_TOKEN_EXPIRATION_SECONDS: Final = 600
"""The API server refuses projected ServiceAccount tokens that expire sooner."""
DEFAULT_TOKEN_EXPIRATION_SECONDS: Final = MIN_TOKEN_EXPIRATION_SECONDS
"""The capacity-report token lives as briefly as allowed; the kubelet renews it at 80%."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class OperatorContext:
    """Operator-wide settings every Region's workloads share.

    Owner-reference data is not here: it comes from the Region itself, so it cannot
    disagree with the object it names.
    """

    report_url: str
    """Where SFU pods POST capacity reports (the control plane's receiver)."""
    default_sfu_image: str = ""
    """Used when a Region names no SFU image (the chart's); empty: Regions must name one."""
    turn_image: str = ""
    """Switchboard's TURN image: coturn when a Region names no image, and always the
    secret-sync sidecar (the chart's)."""
    image_pull_policy: str = "IfNotPresent"
    """Pull policy of the operator's images, and of Region images that set none."""
    turn_image_prometheus: bool = False
    """Whether `turn_image`'s coturn has a Prometheus exporter (Debian's coturn has none)."""
    join_public_keys_configmap: str = JoinKeySecrets.PUBLIC_KEYS_CONFIGMAP
    """ConfigMap in the Region's namespace with the join-token public keys."""
    report_ca_configmap: str | None = None
    """ConfigMap in the Region's namespace with the CA certificate the report receiver's
    certificate chains to (`ReportTls.CA_CONFIGMAP`, the operator publishes it); SFU pods
    verify the receiver with it when the report URL is https. None: with the image's
    trust store."""
    report_interval_seconds: float = defaults.REPORT_INTERVAL_SECONDS
    report_token_expiration_seconds: int = DEFAULT_TOKEN_EXPIRATION_SECONDS
    control_plane_namespace: str | None = None
    """Namespace of the control plane's pods: SFU egress for reports is limited to them.
    None: reports may go to any address on the report URL's port (e.g. an external URL)."""
    control_plane_pod_labels: Mapping[str, str] = field(
        default_factory=lambda: {labels.APP_COMPONENT: labels.COMPONENT_OPERATOR}
    )
    turn_service_type: ServiceType = "ClusterIP"
    """How the TURN Service is exposed; clients outside the cluster need a reachable one."""
    join_api_url: str | None = None
    """Base URL at which clients reach the join API, given to SFU pods for the `rejoin` of
    their `migrate` messages. None: SFU pods send `migrate` without `rejoin`."""

    def __post_init__(self) -> None:
        _require_http_url(self.report_url, "report URL")
        if self.join_api_url is not None:
            _require_http_url(self.join_api_url, "join API URL", base=True)
        if not 0 < self.report_interval_seconds <= MAX_REPORT_INTERVAL_SECONDS:
            raise ValueError(
                f"report interval must be in (0, {MAX_REPORT_INTERVAL_SECONDS}] seconds, "
                f"got {self.report_interval_seconds}"
            )
        if self.report_token_expiration_seconds < MIN_TOKEN_EXPIRATION_SECONDS:
            raise ValueError(
                f"report token expiration must be at least {MIN_TOKEN_EXPIRATION_SECONDS} s"
            )
        if self.turn_service_type not in get_args(ServiceType):
            raise ValueError(f"unknown Service type {self.turn_service_type!r}")

    def pull_policy(self, policy: PullPolicy | None) -> str:
        """A Region's pull policy, or the operator's when it sets none."""
        return policy.value if policy is not None else self.image_pull_policy

    @property
    def report_ca_mounted(self) -> bool:
        """Whether SFU pods mount the report CA (an https report URL and a CA to trust)."""
        return self.report_ca_configmap is not None and self.report_url.startswith("https:")

    @property
    def report_port(self) -> int:
        """TCP port SFU pods connect to for reports."""
        parts = urlsplit(self.report_url)
        return parts.port or _DEFAULT_PORTS[parts.scheme]


def _require_http_url(url: str, what: str, *, base: bool = False) -> None:
    """ValueError unless `url` is http(s) with a host (and, as a `base` that paths are
    appended to, has no query or fragment)."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{what} must be an http(s) URL, got {url!r}")
    if base and (parts.query or parts.fragment):
        raise ValueError(f"{what} must be a base URL without query or fragment, got {url!r}")
