"""Service names for pods: an /etc/hosts per pod that the agent keeps current.

There is no cluster DNS and no kube-proxy here, and EndpointSlices refuse loopback
addresses, so the agent resolves Services itself: it follows every Service and Pod of the
cluster and names, for each Service with a selector, the addresses of its ready pods (as
the EndpointSlice controller would pick them; `publishNotReadyAddresses` counts), under
`<svc>.<ns>.svc.cluster.local`, `<svc>.<ns>.svc`, `<svc>.<ns>` and, in the pod's own
namespace, `<svc>`. Pods with `hostname` and a headless Service as `subdomain` get their
per-pod names too. Each pod's file is bind-mounted read-only at /etc/hosts and rewritten
in place (the mount pins the inode) whenever what it says changes; glibc reads it on
every lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .kube import Kube

log = logging.getLogger(__name__)

HOSTS_PATH = "/etc/hosts"
CLUSTER_DOMAIN = "cluster.local"
WATCH_TIMEOUT_SECONDS = 300
RETRY_SECONDS = 1.0
FLUSH_DELAY_SECONDS = 0.1


@dataclass(frozen=True)
class ServiceInfo:
    namespace: str
    name: str
    selector: Mapping[str, str]
    headless: bool
    publish_not_ready: bool


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    labels: Mapping[str, str]
    ip: str | None
    ready: bool
    hostname: str | None
    subdomain: str | None


def service_info(obj: Mapping[str, Any]) -> ServiceInfo:
    meta, spec = obj["metadata"], obj.get("spec") or {}
    return ServiceInfo(
        namespace=meta["namespace"],
        name=meta["name"],
        selector=dict(spec.get("selector") or {}),
        headless=spec.get("clusterIP") == "None",
        publish_not_ready=bool(spec.get("publishNotReadyAddresses")),
    )


def pod_info(obj: Mapping[str, Any]) -> PodInfo:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    ready = not meta.get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return PodInfo(
        namespace=meta["namespace"],
        name=meta["name"],
        labels=dict(meta.get("labels") or {}),
        ip=status.get("podIP") or None,
        ready=ready,
        hostname=spec.get("hostname") or None,
        subdomain=spec.get("subdomain") or None,
    )


def _selects(service: ServiceInfo, pod: PodInfo) -> bool:
    return (
        bool(service.selector)
        and pod.namespace == service.namespace
        and all(pod.labels.get(key) == value for key, value in service.selector.items())
    )


def service_records(
    services: Iterable[ServiceInfo], pods: Iterable[PodInfo]
) -> list[tuple[str, str, str]]:
    """(namespace, relative name below the namespace, address), sorted.

    `relative` is `<svc>` for a Service and `<hostname>.<svc>` for a pod of a headless one.
    """
    pods = [pod for pod in pods if pod.ip]
    records: set[tuple[str, str, str]] = set()
    for service in services:
        for pod in pods:
            if not _selects(service, pod) or not (pod.ready or service.publish_not_ready):
                continue
            assert pod.ip is not None
            records.add((service.namespace, service.name, pod.ip))
            if service.headless and pod.hostname and pod.subdomain == service.name:
                records.add((service.namespace, f"{pod.hostname}.{service.name}", pod.ip))
    return sorted(records)


def hosts_file(
    records: Iterable[tuple[str, str, str]],
    *,
    namespace: str,
    pod_ip: str,
    hostname: str,
    subdomain: str | None,
    extra: Mapping[str, str] | None = None,
) -> str:
    own = [hostname]
    if subdomain:
        own.insert(0, f"{hostname}.{subdomain}.{namespace}.svc.{CLUSTER_DOMAIN}")
    lines = [
        "# Kubernetes-managed hosts file (switchboard-local node agent).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{pod_ip}\t{' '.join(own)}",
    ]
    for name, address in sorted((extra or {}).items()):
        lines.append(f"{address}\t{name}")
    for ns, relative, address in records:
        names = [f"{relative}.{ns}.svc.{CLUSTER_DOMAIN}", f"{relative}.{ns}.svc"]
        if "." not in relative:
            names.append(f"{relative}.{ns}")
            if ns == namespace:
                names.append(relative)
        lines.append(f"{address}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def write_in_place(path: Path, content: str) -> None:
    """Replace the content without replacing the file: a bind mount keeps its inode."""
    data = content.encode()
    with open(path, "r+b" if path.exists() else "wb") as file:
        file.write(data)
        file.truncate(len(data))


@dataclass
class _Attached:
    namespace: str
    pod_ip: str
    hostname: str
    subdomain: str | None
    content: str = ""


class ServiceHosts:
    """Follows Services and Pods; keeps every attached pod's hosts file current."""

    def __init__(self, kube: Kube, api_server_host: str | None = None) -> None:
        self._kube = kube
        self._services: dict[tuple[str, str], ServiceInfo] = {}
        self._pods: dict[tuple[str, str], PodInfo] = {}
        self._attached: dict[Path, _Attached] = {}
        self._extra: dict[str, str] = {}
        if api_server_host and _is_address(api_server_host):
            # The `kubernetes` Service, at the API server's real (loopback) address.
            for name in ("kubernetes.default.svc." + CLUSTER_DOMAIN, "kubernetes.default.svc"):
                self._extra[name] = api_server_host
        self._dirty = asyncio.Event()
        self._records: list[tuple[str, str, str]] = []

    # --- pods' files -----------------------------------------------------------------------

    def attach(self, path: Path, pod: Mapping[str, Any], pod_ip: str) -> None:
        spec = pod.get("spec") or {}
        meta = pod["metadata"]
        entry = _Attached(
            namespace=meta["namespace"],
            pod_ip=pod_ip,
            hostname=(spec.get("hostname") or meta["name"])[:63].rstrip("-."),
            subdomain=spec.get("subdomain") or None,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        self._attached[path] = entry
        self._write(path, entry)

    def detach(self, path: Path) -> None:
        self._attached.pop(path, None)

    def _write(self, path: Path, entry: _Attached) -> None:
        content = hosts_file(
            self._records,
            namespace=entry.namespace,
            pod_ip=entry.pod_ip,
            hostname=entry.hostname,
            subdomain=entry.subdomain,
            extra=self._extra,
        )
        if content != entry.content:
            write_in_place(path, content)
            path.chmod(0o644)
            entry.content = content

    # --- following the cluster -------------------------------------------------------------

    async def run(self) -> None:
        await asyncio.gather(
            self._follow("/api/v1/services", self._services, service_info),
            self._follow("/api/v1/pods", self._pods, pod_info),
            self._flush_loop(),
        )

    async def _follow(
        self,
        path: str,
        store: dict[tuple[str, str], Any],
        parse: Callable[[Mapping[str, Any]], Any],
    ) -> None:
        def key(obj: Mapping[str, Any]) -> tuple[str, str]:
            return obj["metadata"]["namespace"], obj["metadata"]["name"]

        while True:
            try:
                listing = await self._kube.request("GET", path)
                store.clear()
                store.update({key(obj): parse(obj) for obj in listing.get("items") or []})
                self._dirty.set()
                params = {
                    "resourceVersion": listing["metadata"]["resourceVersion"],
                    "allowWatchBookmarks": "true",
                }
                async for event in self._kube.watch(path, params, WATCH_TIMEOUT_SECONDS):
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        break
                    if kind == "BOOKMARK":
                        continue
                    if kind == "DELETED":
                        store.pop(key(obj), None)
                    else:
                        store[key(obj)] = parse(obj)
                    self._dirty.set()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the watch must outlive any one failure
                log.warning("service hosts watch failed path=%s error=%r", path, error)
                await asyncio.sleep(RETRY_SECONDS)

    async def _flush_loop(self) -> None:
        while True:
            await self._dirty.wait()
            # Many events come in bursts (a rollout): one rewrite for the burst.
            await asyncio.sleep(FLUSH_DELAY_SECONDS)
            self._dirty.clear()
            self._records = service_records(self._services.values(), self._pods.values())
            for path, entry in list(self._attached.items()):
                with contextlib.suppress(OSError):
                    self._write(path, entry)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
