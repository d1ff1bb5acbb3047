"""Names, labels and ownership shared by every object a Region produces."""

import re
import string
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from switchboard_api import labels
from switchboard_api.region import Region
from switchboard_operator.logic.manifests.errors import ManifestError

Manifest = dict[str, Any]
"""A Kubernetes object as the API takes it: plain JSON-ready data."""

SFU_POD_SUFFIX_LENGTH: Final = 5
SFU_POD_SUFFIX_ALPHABET: Final = string.ascii_lowercase + string.digits
"""Characters of the random suffix of an SFU pod's name (as Kubernetes' generateName)."""

_SFU_POD_INFIX = "-sfu-"
MAX_REGION_NAME_LENGTH: Final = 63 - len(_SFU_POD_INFIX) - SFU_POD_SUFFIX_LENGTH
"""Longest Region name whose SFU pod names still fit a pod hostname (a DNS label)."""

_SUFFIX = re.compile(rf"^[a-z0-9]{{{SFU_POD_SUFFIX_LENGTH}}}$")


class Component(StrEnum):
    """The workloads of a Region, as their `app.kubernetes.io/component` label says."""

    SFU = labels.COMPONENT_SFU
    TURN = labels.COMPONENT_TURN


def region_name(region: Region) -> str:
    """The Region's name, checked to be usable in the names of the objects it produces."""
    name = region.metadata.name
    if not name:
        raise ValueError("the Region has no metadata.name")
    if not name[0].isalpha():
        raise ManifestError(
            "InvalidRegionName",
            "metadata.name",
            f"Region name {name!r} must start with a letter: it names Services",
        )
    if len(name) > MAX_REGION_NAME_LENGTH:
        raise ManifestError(
            "InvalidRegionName",
            "metadata.name",
            f"Region name {name!r} is longer than {MAX_REGION_NAME_LENGTH} characters, so "
            "its SFU pod names would not be valid hostnames",
        )
    return name


def workload_name(region: Region, component: Component) -> str:
    """`<region>-sfu` or `<region>-turn`: the Service, ServiceAccount, PDB and policy name."""
    return f"{region_name(region)}-{component}"


def sfu_headless_service_name(region: Region) -> str:
    """The headless Service that gives each SFU pod a DNS name (the pods' subdomain)."""
    return f"{workload_name(region, Component.SFU)}-pods"


def turn_secret_name(region: Region) -> str:
    return f"{workload_name(region, Component.TURN)}-secret"


def sfu_pod_name(region: Region, suffix: str) -> str:
    """`<region>-sfu-<suffix>`; the caller draws the suffix so the builders stay pure."""
    if not _SUFFIX.match(suffix):
        raise ValueError(
            f"SFU pod suffix must be {SFU_POD_SUFFIX_LENGTH} lowercase letters or digits, "
            f"got {suffix!r}"
        )
    return f"{region_name(region)}{_SFU_POD_INFIX}{suffix}"


def selector_labels(region: Region, component: Component) -> dict[str, str]:
    """The labels that pick one Region's pods of one workload (immutable once in use)."""
    return {labels.REGION: region_name(region), labels.APP_COMPONENT: component.value}


def object_labels(region: Region, component: Component) -> dict[str, str]:
    """The recommended `app.kubernetes.io/*` labels plus the Region label."""
    return {
        labels.APP_NAME: f"{labels.PART_OF_VALUE}-{component}",
        labels.APP_INSTANCE: region_name(region),
        labels.APP_PART_OF: labels.PART_OF_VALUE,
        labels.APP_MANAGED_BY: labels.MANAGED_BY_VALUE,
        **selector_labels(region, component),
    }


def owner_reference(region: Region) -> dict[str, Any]:
    """The Region as controlling owner: deleting it garbage-collects the object."""
    if not region.metadata.uid:
        raise ValueError("the Region has no metadata.uid: build manifests from the API object")
    return {
        "apiVersion": region.api_version,
        "kind": region.kind,
        "name": region_name(region),
        "uid": region.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(
    region: Region,
    name: str | None,
    component: Component,
    *,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Metadata of an object the Region owns, in the Region's target namespace (no name:
    for pod templates)."""
    meta: dict[str, Any] = {} if name is None else {"name": name}
    meta["namespace"] = region.spec.namespace
    meta["labels"] = object_labels(region, component)
    meta["ownerReferences"] = [owner_reference(region)]
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta
