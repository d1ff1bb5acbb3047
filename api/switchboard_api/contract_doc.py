"""Renders the message tables of docs/contract.md from the contract models, so the document
cannot drift from switchboard_api.contract (`python -m switchboard_api.contract_doc` rewrites
the generated block; tests/api/test_contract_doc.py fails while it is stale)."""

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from switchboard_api import contract

CONTRACT_DOC = Path(__file__).resolve().parents[2] / "docs" / "contract.md"
BEGIN = "<!-- BEGIN GENERATED: python -m switchboard_api.contract_doc -->"
END = "<!-- END GENERATED -->"

MESSAGES: tuple[type[BaseModel], ...] = (
    contract.CapacityReport,
    contract.RoomUsage,
    contract.PeerEndpoint,
    contract.ReportResponse,
    contract.RoomAssignment,
    contract.LeasePeer,
    contract.JoinTokenClaims,
    contract.JoinGrants,
    contract.MigrateMessage,
    contract.LeaseQuery,
    contract.LeaseStatus,
)


def _type_name(node: dict[str, Any], definitions: dict[str, Any]) -> str:
    """A reader's name for the type a JSON schema node describes."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        target = definitions[name]
        return _type_name(target, definitions) if "enum" in target else name
    if "anyOf" in node:
        return " \\| ".join(_type_name(branch, definitions) for branch in node["anyOf"])
    values = [node["const"]] if "const" in node else node.get("enum")
    if values:
        return " \\| ".join(f'`"{value}"`' for value in values)
    kind = node.get("type", "any")
    if kind == "array":
        kind = f"list of {_type_name(node['items'], definitions)}"
    elif node.get("format") == "date-time":
        kind = "RFC 3339 time"
    return kind


def _default(field: FieldInfo) -> str | None:
    if field.is_required():
        return None
    value = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
    if value is None or isinstance(value, BaseModel):
        return None
    return json.dumps(value.value if isinstance(value, Enum) else value)


def _description(field: FieldInfo) -> str:
    text = field.description or ""
    for meta in field.metadata:
        text = text or getattr(meta, "description", None) or ""
    default = _default(field)
    if default is not None:
        text = f"{text} Default `{default}`.".strip()
    return text.replace("|", "\\|").replace("\n", " ")


def _table(model: type[BaseModel]) -> str:
    doc = " ".join((model.__doc__ or "").split())
    schema = model.model_json_schema(by_alias=True)
    definitions, properties = schema.get("$defs", {}), schema["properties"]
    rows = [
        f"| `{field.alias or name}` | {_type_name(properties[field.alias or name], definitions)} | "
        f"{'yes' if field.is_required() else 'no'} | {_description(field)} |"
        for name, field in model.model_fields.items()
    ]
    return "\n".join(
        [
            f"#### {model.__name__}",
            "",
            doc,
            "",
            "| Field | Type | Required | Meaning |",
            "|---|---|---|---|",
            *rows,
        ]
    )


def _env_table() -> str:
    rows = [f"| `{var.value}` | {contract.SFU_ENV_MEANING[var]} |" for var in contract.SfuEnv]
    return "\n".join(["#### SFU environment", "", "| Variable | Meaning |", "|---|---|", *rows])


def render() -> str:
    """The generated block of docs/contract.md, markers included."""
    body = "\n\n".join([*(_table(model) for model in MESSAGES), _env_table()])
    return f"{BEGIN}\n\n{body}\n\n{END}"


def with_fresh_tables(document: str) -> str:
    """`document` with its generated block replaced by the current rendering."""
    start, end = document.index(BEGIN), document.index(END) + len(END)
    return document[:start] + render() + document[end:]


def main() -> int:
    """Rewrite the generated block of docs/contract.md."""
    CONTRACT_DOC.write_text(with_fresh_tables(CONTRACT_DOC.read_text()))
    print(f"wrote {CONTRACT_DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
