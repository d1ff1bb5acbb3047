"""A container's environment, built from its spec the way the kubelet builds it."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .downward import DownwardAPIError, PodFacts, field_value, resource_value
from .expansion import expand

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class EnvConfigError(Exception):
    """The env refers to something missing; the kubelet reports CreateContainerConfigError."""


@dataclass(frozen=True)
class ReferencedObjects:
    """ConfigMaps and Secrets (raw API objects) fetched for a pod; None marks a missing one."""

    config_maps: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)


def decode_secret_value(encoded: str) -> str:
    # Secret bytes pass through to exec() unchanged, even when they are not UTF-8.
    return base64.b64decode(encoded).decode("utf-8", errors="surrogateescape")


def config_map_data(config_map: Mapping[str, Any]) -> dict[str, str]:
    return dict(config_map.get("data") or {})


def secret_data(secret: Mapping[str, Any]) -> dict[str, str]:
    return {key: decode_secret_value(value) for key, value in (secret.get("data") or {}).items()}


def env_references(containers: Iterable[Mapping[str, Any]]) -> tuple[set[str], set[str]]:
    """Names of the ConfigMaps and Secrets that the containers' env and envFrom read."""
    config_maps: set[str] = set()
    secrets: set[str] = set()
    for container in containers:
        for source in container.get("envFrom") or []:
            if "configMapRef" in source:
                config_maps.add(source["configMapRef"]["name"])
            if "secretRef" in source:
                secrets.add(source["secretRef"]["name"])
        for var in container.get("env") or []:
            value_from = var.get("valueFrom") or {}
            if "configMapKeyRef" in value_from:
                config_maps.add(value_from["configMapKeyRef"]["name"])
            if "secretKeyRef" in value_from:
                secrets.add(value_from["secretKeyRef"]["name"])
    return config_maps, secrets


def container_environment(
    facts: PodFacts,
    container: Mapping[str, Any],
    objects: ReferencedObjects,
    service_env: Mapping[str, str],
    image_env: Mapping[str, str],
) -> dict[str, str]:
    """The full environment of a container process.

    Precedence, lowest first: image env, service links, envFrom, env. `$(VAR)` in env values
    expands against service links and the variables defined before it, as in the kubelet.
    """
    defined: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        defined.update(_env_from(source, objects))
    for var in container.get("env") or []:
        value = _env_var_value(
            var,
            facts=facts,
            container_name=container.get("name", ""),
            objects=objects,
            defined=defined,
            service_env=service_env,
        )
        if value is not None:
            defined[var["name"]] = value
    return {**image_env, **service_env, **defined}


def _env_from(source: Mapping[str, Any], objects: ReferencedObjects) -> dict[str, str]:
    prefix = source.get("prefix", "")
    if "configMapRef" in source:
        ref = source["configMapRef"]
        config_map = objects.config_maps.get(ref["name"])
        if config_map is None:
            if ref.get("optional"):
                return {}
            raise EnvConfigError(f'configmap "{ref["name"]}" not found')
        data = config_map_data(config_map)
    elif "secretRef" in source:
        ref = source["secretRef"]
        secret = objects.secrets.get(ref["name"])
        if secret is None:
            if ref.get("optional"):
                return {}
            raise EnvConfigError(f'secret "{ref["name"]}" not found')
        data = secret_data(secret)
    else:
        return {}
    # Keys that are not valid variable names are skipped, as the kubelet does.
    return {prefix + key: value for key, value in data.items() if _ENV_NAME.match(prefix + key)}


def _env_var_value(
    var: Mapping[str, Any],
    *,
    facts: PodFacts,
    container_name: str,
    objects: ReferencedObjects,
    defined: Mapping[str, str],
    service_env: Mapping[str, str],
) -> str | None:
    value_from = var.get("valueFrom")
    if not value_from:
        return expand(var.get("value", ""), {**service_env, **defined})
    try:
        if "fieldRef" in value_from:
            return field_value(facts, value_from["fieldRef"]["fieldPath"])
        if "resourceFieldRef" in value_from:
            ref = value_from["resourceFieldRef"]
            return resource_value(facts, ref.get("containerName") or container_name, ref)
    except DownwardAPIError as error:
        raise EnvConfigError(f"env {var['name']}: {error}") from error
    if "configMapKeyRef" in value_from:
        return _key_ref(value_from["configMapKeyRef"], objects.config_maps, "configmap", False)
    if "secretKeyRef" in value_from:
        return _key_ref(value_from["secretKeyRef"], objects.secrets, "secret", True)
    raise EnvConfigError(f"env {var['name']}: unsupported valueFrom {sorted(value_from)}")


def _key_ref(
    ref: Mapping[str, Any],
    objects: Mapping[str, Mapping[str, Any] | None],
    kind: str,
    encoded: bool,
) -> str | None:
    obj = objects.get(ref["name"])
    optional = bool(ref.get("optional"))
    if obj is None:
        if optional:
            return None
        raise EnvConfigError(f'{kind} "{ref["name"]}" not found')
    data = secret_data(obj) if encoded else config_map_data(obj)
    if ref["key"] not in data:
        if optional:
            return None
        raise EnvConfigError(f"couldn't find key {ref['key']} in {kind} {ref['name']}")
    return data[ref["key"]]
