"""Base model shared by every Switchboard API type: camelCase JSON names, snake_case Python."""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    """A pydantic model whose JSON field names are the camelCase of its attribute names.

    Both spellings are accepted on input so Python callers can use attribute names;
    `model_dump(by_alias=True)` produces the wire form.
    """

    model_config = ConfigDict(
        populate_by_name=True,
        alias_generator=to_camel,
        # Receivers ignore fields they do not know: adding an optional field is a
        # compatible change (see docs/contract.md, "Versioning").
        extra="ignore",
    )

    def to_wire(self) -> dict:
        """The JSON-ready dict sent over the wire (camelCase, no unset optionals)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_wire_json(self) -> bytes:
        """`to_wire()` already encoded as JSON, without the dict in between (a report of
        thousands of rooms, every second, costs a fraction of encoding the dict)."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()
