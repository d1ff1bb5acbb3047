"""The node agent's configuration file (YAML): its nodes, the images it can run, and its timings.

Example (keys not shown take kubelet-like defaults)::

    workDir: /var/lib/switchboard-local/agent      # logs/, pods/ (volume contents)
    podAddressRange: 127.40.0.0/16                 # nodes take the first addresses
    nodes:
      - {name: eu-west-a-1, region: eu-west, zone: eu-west-a, labels: {tier: media}}
    imageStores:                                   # podman stores with built images
      - /root/.cache/switchboard/images/<key>/store  # (`make images`), run through runc
    images:                                        # local stand-ins, run as processes:
      my/app: {entrypoint: [/tmp/app/venv/bin/app], keepVisible: [/tmp/app]}
      coturn/coturn: {entrypoint: [/usr/bin/turnserver], env: {TZ: UTC}}
    restartBackoff: {initialSeconds: 10, maxSeconds: 300}
    onShutdown: leave                              # or delete the Nodes
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .backoff import BackoffPolicy
from .images import ImageCatalogue, LocalImage

DEFAULT_CAPACITY = {"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}
DEFAULT_INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TZ")


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class NodeConfig(_Model):
    """One Node this agent registers and runs pods for."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)
    region: str
    zone: str
    address: str | None = Field(
        default=None, description="InternalIP (loopback); taken from the pod range when unset"
    )
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[dict[str, Any]] = Field(default_factory=list)
    capacity: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_CAPACITY))

    @field_validator("address")
    @classmethod
    def _loopback(cls, value: str | None) -> str | None:
        if value is not None and not ipaddress.ip_address(value).is_loopback:
            raise ValueError(f"node address {value} is not a loopback address")
        return value


class ImageConfig(_Model):
    """The local installation that stands in for an image."""

    entrypoint: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    keep_visible: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        # `image: [program, arg]` is shorthand for `image: {entrypoint: [program, arg]}`.
        if isinstance(value, list | tuple):
            return {"entrypoint": list(value)}
        return value


class BackoffConfig(_Model):
    initial_seconds: float = Field(default=10.0, gt=0)
    max_seconds: float = Field(default=300.0, gt=0)


class AgentConfig(_Model):
    work_dir: Path
    nodes: list[NodeConfig] = Field(min_length=1)
    images: dict[str, ImageConfig] = Field(
        default_factory=dict,
        description="Images run as local processes (repository or exact reference): a fast "
        "inner loop chosen per image. Every other image runs from `imageStores`.",
    )
    image_stores: list[Path] = Field(
        default_factory=list,
        description="Read-only podman image stores; their images run through podman + runc. "
        "Empty: only `images` run, any other image is ErrImagePull.",
    )
    service_hosts: bool = Field(
        default=True, description="Give pods an /etc/hosts naming the cluster's Services"
    )
    pod_address_range: str = "127.10.0.0/16"
    restart_backoff: BackoffConfig = Field(default_factory=BackoffConfig)
    lease_duration_seconds: int = Field(default=40, gt=0)
    lease_renew_seconds: float = Field(default=10.0, gt=0)
    node_status_report_seconds: float = Field(default=300.0, gt=0)
    volume_resync_seconds: float = Field(default=60.0, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    on_shutdown: Literal["leave", "delete"] = "leave"
    api_server_for_pods: str | None = Field(
        default=None,
        description="URL pods reach the API server at (KUBERNETES_SERVICE_*); "
        "defaults to the kubeconfig's server",
    )
    inherit_env: list[str] = Field(default_factory=lambda: list(DEFAULT_INHERITED_ENV))

    @model_validator(mode="after")
    def _unique_nodes(self) -> AgentConfig:
        names = [node.name for node in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"node names must be unique: {names}")
        return self

    def catalogue(self) -> ImageCatalogue:
        return ImageCatalogue(
            {
                name: LocalImage(
                    entrypoint=tuple(image.entrypoint),
                    env=dict(image.env),
                    keep_visible=tuple(image.keep_visible),
                )
                for name, image in self.images.items()
            }
        )

    def backoff_policy(self) -> BackoffPolicy:
        return BackoffPolicy(
            initial_seconds=self.restart_backoff.initial_seconds,
            max_seconds=self.restart_backoff.max_seconds,
        )

    def node_addresses(self) -> dict[str, str]:
        """Each node's address: configured, or the first addresses of the pod range in order."""
        network = ipaddress.ip_network(self.pod_address_range)
        spare = (str(host) for host in network.hosts())
        return {node.name: node.address or next(spare) for node in self.nodes}


def load_config(path: Path) -> AgentConfig:
    return AgentConfig.model_validate(yaml.safe_load(path.read_text()))
