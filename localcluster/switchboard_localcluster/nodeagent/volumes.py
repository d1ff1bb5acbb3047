"""Pure volume contents: which files a ConfigMap, Secret, downwardAPI or projected volume holds."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .downward import DownwardAPIError, PodFacts, field_value, resource_value

DEFAULT_MODE = 0o644
DEFAULT_TOKEN_EXPIRATION_SECONDS = 3600
FILE_BACKED_KINDS = ("configMap", "secret", "downwardAPI", "projected")
DIRECTORY_KINDS = ("emptyDir", "hostPath")


class VolumeError(Exception):
    """The volume cannot be set up yet (missing object or key) or at all (unsupported kind)."""


@dataclass(frozen=True)
class FileContent:
    data: bytes
    mode: int


Payload = dict[str, FileContent]


@dataclass(frozen=True)
class TokenSource:
    """A projected serviceAccountToken the node must request for the pod."""

    volume: str
    path: str
    audience: str | None
    expiration_seconds: int


@dataclass(frozen=True)
class VolumeObjects:
    """Objects fetched for a pod's volumes: ConfigMaps, Secrets (None when missing), tokens."""

    config_maps: Mapping[str, Mapping[str, Any] | None]
    secrets: Mapping[str, Mapping[str, Any] | None]
    tokens: Mapping[TokenSource, str]


def volume_kind(volume: Mapping[str, Any]) -> str:
    kinds = [key for key in volume if key != "name"]
    return kinds[0] if kinds else "emptyDir"


def volume_references(volumes: list[Mapping[str, Any]]) -> tuple[set[str], set[str]]:
    """Names of the ConfigMaps and Secrets the pod's volumes read."""
    config_maps: set[str] = set()
    secrets: set[str] = set()
    for volume in volumes:
        if "configMap" in volume:
            config_maps.add(volume["configMap"]["name"])
        if "secret" in volume:
            secrets.add(volume["secret"]["secretName"])
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in source:
                config_maps.add(source["configMap"]["name"])
            if "secret" in source:
                secrets.add(source["secret"]["name"])
    return config_maps, secrets


def token_sources(volumes: list[Mapping[str, Any]]) -> list[TokenSource]:
    tokens = []
    for volume in volumes:
        for source in (volume.get("projected") or {}).get("sources") or []:
            token = source.get("serviceAccountToken")
            if token is not None:
                tokens.append(
                    TokenSource(
                        volume=volume["name"],
                        path=token["path"],
                        audience=token.get("audience") or None,
                        expiration_seconds=int(
                            token.get("expirationSeconds") or DEFAULT_TOKEN_EXPIRATION_SECONDS
                        ),
                    )
                )
    return tokens


def volume_payload(volume: Mapping[str, Any], facts: PodFacts, objects: VolumeObjects) -> Payload:
    """The files of a file-backed volume, keyed by relative path."""
    kind = volume_kind(volume)
    spec = volume[kind] or {}
    default_mode = spec.get("defaultMode", DEFAULT_MODE)
    if kind == "configMap":
        return _key_files(
            spec["name"],
            objects=objects.config_maps,
            to_bytes=_config_map_bytes,
            spec=spec,
            default_mode=default_mode,
            kind="configmap",
        )
    if kind == "secret":
        return _key_files(
            spec["secretName"],
            objects=objects.secrets,
            to_bytes=_secret_bytes,
            spec=spec,
            default_mode=default_mode,
            kind="secret",
        )
    if kind == "downwardAPI":
        return _downward_files(spec.get("items") or [], facts, default_mode)
    if kind == "projected":
        payload: Payload = {}
        for source in spec.get("sources") or []:
            payload.update(_projected_source(volume["name"], source, facts, objects, default_mode))
        return payload
    raise VolumeError(f"volume {volume['name']!r}: {kind} is not a file-backed volume")


def _config_map_bytes(obj: Mapping[str, Any]) -> dict[str, bytes]:
    data = {key: value.encode() for key, value in (obj.get("data") or {}).items()}
    data.update(
        {key: base64.b64decode(value) for key, value in (obj.get("binaryData") or {}).items()}
    )
    return data


def _secret_bytes(obj: Mapping[str, Any]) -> dict[str, bytes]:
    return {key: base64.b64decode(value) for key, value in (obj.get("data") or {}).items()}


def _key_files(
    name: str,
    *,
    objects: Mapping[str, Mapping[str, Any] | None],
    to_bytes: Callable[[Mapping[str, Any]], dict[str, bytes]],
    spec: Mapping[str, Any],
    default_mode: int,
    kind: str,
) -> Payload:
    obj = objects.get(name)
    optional = bool(spec.get("optional"))
    if obj is None:
        if optional:
            return {}
        raise VolumeError(f'{kind} "{name}" not found')
    data: dict[str, bytes] = to_bytes(obj)
    items = spec.get("items")
    if not items:
        return {key: FileContent(value, default_mode) for key, value in data.items()}
    payload: Payload = {}
    for item in items:
        if item["key"] not in data:
            if optional:
                continue
            raise VolumeError(f'configuration key "{item["key"]}" not found in {kind} "{name}"')
        payload[item["path"]] = FileContent(data[item["key"]], item.get("mode", default_mode))
    return payload


def _downward_files(items: list[Mapping[str, Any]], facts: PodFacts, default_mode: int) -> Payload:
    payload: Payload = {}
    for item in items:
        try:
            if "fieldRef" in item:
                value = field_value(facts, item["fieldRef"]["fieldPath"])
            elif "resourceFieldRef" in item:
                ref = item["resourceFieldRef"]
                value = resource_value(facts, ref.get("containerName", ""), ref)
            else:
                raise VolumeError(f"downwardAPI item {item.get('path')!r} has no source")
        except DownwardAPIError as error:
            raise VolumeError(str(error)) from error
        payload[item["path"]] = FileContent(value.encode(), item.get("mode", default_mode))
    return payload


def _projected_source(
    volume_name: str,
    source: Mapping[str, Any],
    facts: PodFacts,
    objects: VolumeObjects,
    default_mode: int,
) -> Payload:
    if "configMap" in source:
        spec = source["configMap"]
        return _key_files(
            spec["name"],
            objects=objects.config_maps,
            to_bytes=_config_map_bytes,
            spec=spec,
            default_mode=default_mode,
            kind="configmap",
        )
    if "secret" in source:
        spec = source["secret"]
        return _key_files(
            spec["name"],
            objects=objects.secrets,
            to_bytes=_secret_bytes,
            spec=spec,
            default_mode=default_mode,
            kind="secret",
        )
    if "downwardAPI" in source:
        return _downward_files(source["downwardAPI"].get("items") or [], facts, default_mode)
    if "serviceAccountToken" in source:
        wanted = next(
            (
                t
                for t in objects.tokens
                if t.volume == volume_name and t.path == source["serviceAccountToken"]["path"]
            ),
            None,
        )
        if wanted is None:
            raise VolumeError(f"no service account token issued for volume {volume_name!r}")
        return {wanted.path: FileContent(objects.tokens[wanted].encode(), default_mode)}
    raise VolumeError(f"projected volume {volume_name!r}: unsupported source {sorted(source)}")
