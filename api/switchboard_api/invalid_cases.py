"""Invalid Regions and Rooms derived from the models' own constraints (bounds, enums,
patterns, lengths, required fields, types and each CEL rule's example violation), each
labelled with the field the API server must name when it rejects the object.

The table grows with the schema: a new bounded field or rule adds cases without a test edit.
"""

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from switchboard_api.cel import CelRule, CelValidated
from switchboard_api.crdgen import openapi_schema

_WRONG_TYPE_VALUES: Mapping[str, Any] = {
    "integer": "many",
    "number": "lots",
    "boolean": "maybe",
    "string": 42,
    "object": "not-an-object",
    "array": "not-a-list",
}
# Strings tried, in order, for one that breaks a field's pattern.
_PATTERN_BREAKERS = ("Not_Valid!", "-leading-dash", "with space")
# Longer limits (condition messages, label keys) add bulk to the table, not coverage.
_MAX_LENGTH_TESTED = 1024
# Status is written through its own subresource: the API server drops it on create.
_SKIPPED_ROOT_PROPERTIES = frozenset({"apiVersion", "kind", "status"})


@dataclass(frozen=True)
class InvalidCase:
    """An object the API server must reject, and the field its rejection must name."""

    id: str
    kind: str
    body: dict[str, Any]
    field: str
    """The expected `details.causes[].field`, e.g. `spec.sfu.minReplicas`."""
    broken_by: str
    """Which constraint the object breaks, for test output."""


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def _with_value(base: Mapping[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(dict(base))
    node = body
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value
    return body


def _without(base: Mapping[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    body = copy.deepcopy(dict(base))
    node = body
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node.pop(path[-1], None)
    return body


def _merged(target: Any, patch: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        out[key] = _merged(out.get(key), value) if isinstance(value, Mapping) else value
    return out


def _at(base: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = base
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _known_rules() -> dict[str, CelRule]:
    rules: dict[str, CelRule] = {}
    pending = list(CelValidated.__subclasses__())
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        rules.update({rule.rule: rule for rule in model.cel_rules})
    return rules


def _scalar_violations(
    schema: Mapping[str, Any], path: tuple[str, ...]
) -> Iterator[tuple[str, Any]]:
    """(what is broken, offending value) for one field's own constraints."""
    kind = schema.get("type")
    # A mistyped metadata fails decoding (400) before validation: that is not this table.
    if kind in _WRONG_TYPE_VALUES and path[0] != "metadata":
        yield f"type {kind}", _WRONG_TYPE_VALUES[kind]
    step = 1 if kind == "integer" else 0.5
    if "minimum" in schema:
        low = schema["minimum"]
        yield (
            f"minimum {low}",
            low if schema.get("exclusiveMinimum") is True else low - step,
        )
    if "maximum" in schema:
        high = schema["maximum"]
        yield (
            f"maximum {high}",
            high if schema.get("exclusiveMaximum") is True else high + step,
        )
    if "enum" in schema:
        yield "enum", "Bogus"
    if "pattern" in schema and kind == "string":
        pattern = re.compile(schema["pattern"])
        breaker = next((s for s in _PATTERN_BREAKERS if not pattern.search(s)), None)
        if breaker is not None:
            yield "pattern", breaker
    if "maxLength" in schema and schema["maxLength"] <= _MAX_LENGTH_TESTED:
        yield f"maxLength {schema['maxLength']}", "a" * (schema["maxLength"] + 1)
    if schema.get("minLength", 0) > 0:
        yield f"minLength {schema['minLength']}", ""


def _walk(
    schema: Mapping[str, Any],
    path: tuple[str, ...],
    valid: Mapping[str, Any],
    kind: str,
    rules: Mapping[str, CelRule],
) -> Iterator[InvalidCase]:
    field = _dotted(path)
    for broken_by, value in _scalar_violations(schema, path) if path else ():
        yield InvalidCase(
            f"{kind}:{field}:{broken_by}", kind, _with_value(valid, path, value), field, broken_by
        )
    for entry in schema.get("x-kubernetes-validations", ()):
        rule = rules[entry["rule"]]
        body = copy.deepcopy(dict(valid))
        patched = _merged(_at(body, path), rule.violation)
        body = _with_value(body, path, patched) if path else _merged(body, rule.violation)
        target = _dotted(path + tuple(rule.field_path.lstrip(".").split("."))) or field
        yield InvalidCase(f"{kind}:{target}:rule {rule.rule}", kind, body, target, rule.rule)
    properties = schema.get("properties", {})
    for name in schema.get("required", ()):
        if not path and name in _SKIPPED_ROOT_PROPERTIES:
            continue
        child = _dotted((*path, name))
        yield InvalidCase(
            f"{kind}:{child}:required", kind, _without(valid, (*path, name)), child, "required"
        )
    for name, child_schema in properties.items():
        if not path and name in _SKIPPED_ROOT_PROPERTIES:
            continue
        yield from _walk(child_schema, (*path, name), valid, kind, rules)


def invalid_cases(model: type[BaseModel], valid: Mapping[str, Any]) -> list[InvalidCase]:
    """Objects derived from `valid` (an accepted object of `model`'s kind), each breaking
    one constraint of the model's schema."""
    kind = model.model_fields["kind"].default
    cases = list(_walk(openapi_schema(model), (), valid, kind, _known_rules()))
    ids = [case.id for case in cases]
    duplicates = {case_id for case_id in ids if ids.count(case_id) > 1}
    if duplicates:
        raise AssertionError(f"duplicate invalid case ids: {sorted(duplicates)}")
    return cases


def python_error_fields(model: type[BaseModel], body: Mapping[str, Any]) -> set[str]:
    """Dotted wire paths the model itself reports for `body`; empty if it accepts it.

    A failed CEL rule is reported at its model with the message `<fieldPath>: ...`, so its
    field is the model's path plus that relative path.
    """
    try:
        model.model_validate(body)
    except ValidationError as error:
        fields = set()
        for detail in error.errors():
            location = tuple(str(part) for part in detail["loc"])
            fields.add(_dotted(location))
            message = detail["msg"].removeprefix("Value error, ")
            for failure in message.split("; "):
                relative, _, _ = failure.partition(": ")
                if relative and relative != "<self>" and " " not in relative:
                    fields.add(_dotted((*location, *relative.split("."))))
        return fields
    return set()
