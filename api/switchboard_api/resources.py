"""The Kubernetes API group, version and resource names Switchboard defines."""

from dataclasses import dataclass
from typing import Final, Literal

GROUP: Final = "switchboard.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
CATEGORY: Final = "switchboard"
"""`kubectl get switchboard` lists every kind in this category."""


@dataclass(frozen=True)
class ResourceNames:
    """How one custom resource is named in the API (what a CRD's `names` block holds)."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    scope: Literal["Cluster", "Namespaced"]

    @property
    def crd_name(self) -> str:
        """The CustomResourceDefinition's metadata.name, `<plural>.<group>`."""
        return f"{self.plural}.{GROUP}"


REGION: Final = ResourceNames(
    kind="Region", plural="regions", singular="region", short_names=("rgn",), scope="Cluster"
)
ROOM: Final = ResourceNames(
    kind="Room", plural="rooms", singular="room", short_names=("rm",), scope="Namespaced"
)


@dataclass(frozen=True)
class PrinterColumn:
    """A column `kubectl get` shows for a resource (a CRD `additionalPrinterColumns` entry)."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str
    priority: int = 0
    """0: always shown; 1: only with `-o wide`."""

    def to_crd(self) -> dict[str, object]:
        """The column as it appears in a CustomResourceDefinition."""
        column: dict[str, object] = {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }
        if self.priority:
            column["priority"] = self.priority
        return column


AGE_COLUMN: Final = PrinterColumn(
    "Age", "date", ".metadata.creationTimestamp", "Time since the object was created."
)
