"""The addresses clients are given: each SFU pod's public signalling URL and the Region's
TURN URIs."""

import functools
import ipaddress
import string
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

from switchboard_api import ports
from switchboard_api.region import Region
from switchboard_operator.logic.manifests.errors import ManifestError
from switchboard_operator.logic.manifests.meta import region_name

PUBLIC_URL_FIELD: Final = "spec.sfu.publicURLTemplate"
DEFAULT_PUBLIC_URL_TEMPLATE: Final = "http://{podIP}:{port}"
"""Used when the Region sets no template: the pod's own address."""
DEFAULT_TLS_PUBLIC_URL_TEMPLATE: Final = "https://{podIP}:{port}"
"""The same for a Region whose SFU pods serve TLS (a certificate naming the pod IPs)."""
PLACEHOLDERS: Final = ("pod", "podIP", "namespace", "region", "port")
_URL_SCHEMES = ("ws", "wss", "http", "https")

# Values that stand in for a pod when a template is checked before any pod exists.
_SAMPLE_POD = "region-sfu-abcde"
_SAMPLE_POD_IP = "10.0.0.1"


def validate_public_url_template(region: Region) -> None:
    """ManifestError unless the Region's template renders valid URLs."""
    template = _template(region)
    values = _values(region.spec.namespace, region_name(region), _SAMPLE_POD, _SAMPLE_POD_IP)
    _render(template, values)


def sfu_public_url(region: Region, pod_name: str, pod_ip: str | None) -> str | None:
    """The signalling URL clients use for the pod, or None while it needs the pod's IP
    and the pod has none yet."""
    return _public_url(
        _template(region), region.spec.namespace, region_name(region), pod_name, pod_ip
    )


@functools.lru_cache(maxsize=4096)
def _public_url(
    template: str, namespace: str, region: str, pod_name: str, pod_ip: str | None
) -> str | None:
    """Rendered once per pod and address: every placement and move asks for it."""
    if pod_ip is None and "podIP" in _fields(template):
        return None
    return _render(template, _values(namespace, region, pod_name, pod_ip or ""))


def turn_uris(region: Region, host: str) -> list[str]:
    """The `turn:` URIs (UDP and TCP) and, with TLS configured, the `turns:` URI at `host`,
    the TURN Service's externally reachable name or address."""
    turn = region.spec.turn
    if not turn.enabled:
        return []
    authority = _host(host)
    uris = [
        f"turn:{authority}:{turn.listening_port}?transport=udp",
        f"turn:{authority}:{turn.listening_port}?transport=tcp",
    ]
    if turn.tls_secret_name:
        uris.append(f"turns:{authority}:{turn.tls_port}?transport=tcp")
    return uris


def _template(region: Region) -> str:
    sfu = region.spec.sfu
    if sfu.public_url_template:
        return sfu.public_url_template
    return DEFAULT_TLS_PUBLIC_URL_TEMPLATE if sfu.tls_secret_name else DEFAULT_PUBLIC_URL_TEMPLATE


def _values(namespace: str, region: str, pod_name: str, pod_ip: str) -> dict[str, str]:
    return {
        "pod": pod_name,
        "podIP": _host(pod_ip) if pod_ip else "",
        "namespace": namespace,
        "region": region,
        "port": str(ports.SFU_SIGNALLING_PORT),
    }


def _host(address: str) -> str:
    """An address as a URL host: IPv6 literals need brackets."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    return f"[{parsed}]" if parsed.version == 6 else str(parsed)


def _fields(template: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ManifestError(
            "InvalidPublicURLTemplate",
            PUBLIC_URL_FIELD,
            f"{template!r} is not a valid template ({error}); write literal braces as "
            "{{ and }}",
        ) from None
    fields = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            placeholders = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            raise ManifestError(
                "InvalidPublicURLTemplate",
                PUBLIC_URL_FIELD,
                f"unknown placeholder {{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}} in {template!r}; use {placeholders}",
            )
        fields.append(name)
    return fields


def _render(template: str, values: Mapping[str, str]) -> str:
    _fields(template)
    url = template.format_map(values)
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in _URL_SCHEMES or not parts.hostname or port == -1:
        raise ManifestError(
            "InvalidPublicURLTemplate",
            PUBLIC_URL_FIELD,
            f"{template!r} renders {url!r}, which is not a {'/'.join(_URL_SCHEMES)} URL "
            "with a host",
        )
    return url
