"""Cross-field validation rules, each declared once: as the CEL expression the API server
evaluates (`x-kubernetes-validations` in the generated CRD) and as the same check in Python,
with an example violation that the invalid-object table is built from."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pydantic import ConfigDict, model_validator

from switchboard_api._camel import CamelModel


@dataclass(frozen=True)
class CelRule:
    """One validation rule over the object a model describes (`self` in CEL)."""

    rule: str
    """CEL expression; true means valid."""
    message: str
    """What the API server and the Python model report when the rule fails."""
    check: Callable[[Any], bool]
    """The same rule over the validated Python model instance."""
    violation: Mapping[str, Any]
    """Wire-form fields that, merged into a valid object at this model's place, break the rule."""
    field_path: str = ""
    """JSONPath (relative to `self`, e.g. `.maxReplicas`) of the field the error names."""
    reason: str = "FieldValueInvalid"

    def to_schema(self) -> dict[str, Any]:
        """The rule as an `x-kubernetes-validations` entry."""
        entry: dict[str, Any] = {"rule": self.rule, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
            entry["reason"] = self.reason
        return entry

    def error(self) -> str:
        """The Python validation message: `<field>: <message>`, field relative to the model."""
        return f"{self.field_path.lstrip('.') or '<self>'}: {self.message}"


def _add_rules_to_schema(schema: dict[str, Any], model: type["CelValidated"]) -> None:
    if model.cel_rules:
        schema["x-kubernetes-validations"] = [rule.to_schema() for rule in model.cel_rules]


class CelValidated(CamelModel):
    """A model whose `cel_rules` are enforced in Python as well as by the API server
    (its JSON schema carries them as `x-kubernetes-validations`)."""

    model_config = ConfigDict(json_schema_extra=_add_rules_to_schema)

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()

    @model_validator(mode="after")
    def _check_cel_rules(self) -> Self:
        failed = [rule.error() for rule in type(self).cel_rules if not rule.check(self)]
        if failed:
            raise ValueError("; ".join(failed))
        return self
