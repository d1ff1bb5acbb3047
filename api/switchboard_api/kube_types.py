"""Kubernetes API shapes reused inside Switchboard's schemas: quantities, resource
requirements, label selectors, conditions and the object metadata Switchboard reads."""

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema

from switchboard_api._camel import CamelModel

DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_LABEL_PATTERN = f"^{DNS_LABEL}$"
DNS_LABEL_MAX_LENGTH = 63
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_SUBDOMAIN_MAX_LENGTH = 253

DnsLabel = Annotated[
    str, Field(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=DNS_LABEL_MAX_LENGTH)
]
"""An RFC 1123 label: what Namespace names and label values derived from names must be."""

DnsSubdomain = Annotated[
    str, Field(pattern=DNS_SUBDOMAIN_PATTERN, min_length=1, max_length=DNS_SUBDOMAIN_MAX_LENGTH)
]
"""An RFC 1123 subdomain: what most object names (Secrets, ConfigMaps) must be."""

# The API server's resource.Quantity grammar, as kubebuilder emits it.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]"
    r"|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY = re.compile(QUANTITY_PATTERN)


def _check_quantity(value: int | str) -> int | str:
    if isinstance(value, str) and not _QUANTITY.match(value):
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return value


Quantity = Annotated[
    int | str,
    AfterValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A resource quantity such as `500m`, `1Gi` or `2`."""


class PullPolicy(StrEnum):
    """When the kubelet pulls a container image (core/v1 PullPolicy)."""

    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class ResourceRequirements(CamelModel):
    """Compute resources of a container (core/v1 ResourceRequirements, limits and requests)."""

    limits: dict[str, Quantity] | None = Field(
        default=None,
        description="Maximum amount of compute resources allowed, e.g. `cpu: 2`, `memory: 1Gi`.",
    )
    requests: dict[str, Quantity] | None = Field(
        default=None,
        description="Minimum amount of compute resources required; the scheduler reserves it.",
    )


class SelectorOperator(StrEnum):
    """How a label selector requirement relates a key to its values."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(CamelModel):
    """One requirement of a label selector."""

    key: str = Field(min_length=1, max_length=317, description="The label key.")
    operator: SelectorOperator = Field(description="How the key relates to the values.")
    values: list[Annotated[str, Field(max_length=63)]] | None = Field(
        default=None,
        max_length=64,
        description="Values for In and NotIn; must be empty for Exists and DoesNotExist.",
    )


class LabelSelector(CamelModel):
    """A label query over objects (meta/v1 LabelSelector); empty matches everything."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-map-type": "atomic"})

    match_labels: dict[str, str] | None = Field(
        default=None, description="Labels an object must carry, all of them, with these values."
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, max_length=32, description="Requirements an object must meet, all of them."
    )


class ConditionStatus(StrEnum):
    """Whether a condition holds."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(CamelModel):
    """One aspect of an object's current state (the meta/v1 Condition shape)."""

    type: str = Field(
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        max_length=316,
        description="Condition type in CamelCase, e.g. `Ready`.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The `.metadata.generation` the condition was set for; if it is older than "
        "the object's generation, the condition is out of date.",
    )
    last_transition_time: AwareDatetime = Field(
        description="When the condition last changed from one status to another."
    )
    reason: str = Field(
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        min_length=1,
        max_length=1024,
        description="Programmatic identifier, CamelCase, for the last transition.",
    )
    message: str = Field(
        default="", max_length=32768, description="Human-readable details of the transition."
    )


class ObjectMeta(BaseModel):
    """The parts of meta/v1 ObjectMeta Switchboard reads (the API server owns the rest)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    name: DnsLabel | None = Field(
        default=None,
        description="Name: a DNS label (lower-case letters, digits and '-', at most 63 "
        "characters), stricter than the API server's default because it becomes a label value "
        "and part of the names of objects the operator creates.",
    )
    generate_name: str | None = Field(default=None, alias="generateName")
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")
    creation_timestamp: datetime | None = Field(default=None, alias="creationTimestamp")
    deletion_timestamp: datetime | None = Field(default=None, alias="deletionTimestamp")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
