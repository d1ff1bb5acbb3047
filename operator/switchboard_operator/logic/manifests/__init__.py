"""Pure manifest builders: what a Region produces, as plain Kubernetes objects.

Every function takes the parsed Region (and the operator's context) and returns JSON-ready
dicts; nothing here talks to the API, draws random numbers or reads a clock.
"""

from switchboard_operator.logic.manifests.accounts import service_account
from switchboard_operator.logic.manifests.context import OperatorContext
from switchboard_operator.logic.manifests.desired import APPLY_ORDER, desired_objects
from switchboard_operator.logic.manifests.disruption import (
    hosts_rooms_patch,
    sfu_disruption_budget,
    turn_disruption_budget,
)
from switchboard_operator.logic.manifests.errors import ManifestError
from switchboard_operator.logic.manifests.keys import (
    HOSTS_ROOMS,
    HOSTS_ROOMS_VALUE,
    POD_TEMPLATE_HASH,
    TURN_SECRET_ROTATED_AT,
)
from switchboard_operator.logic.manifests.meta import (
    SFU_POD_SUFFIX_ALPHABET,
    SFU_POD_SUFFIX_LENGTH,
    Component,
    Manifest,
    selector_labels,
    sfu_headless_service_name,
    sfu_pod_name,
    turn_secret_name,
    workload_name,
)
from switchboard_operator.logic.manifests.network import (
    Flow,
    Peer,
    sfu_network_policy,
    traffic_matrix,
    turn_network_policy,
)
from switchboard_operator.logic.manifests.services import (
    sfu_headless_service,
    sfu_signalling_service,
    turn_service,
)
from switchboard_operator.logic.manifests.sfu import pod_template_hash, sfu_pod
from switchboard_operator.logic.manifests.turn import (
    turn_deployment,
    turn_secret,
    turn_secrets_from_secret,
)
from switchboard_operator.logic.manifests.urls import (
    sfu_public_url,
    turn_uris,
    validate_public_url_template,
)

__all__ = [
    "APPLY_ORDER",
    "HOSTS_ROOMS",
    "HOSTS_ROOMS_VALUE",
    "POD_TEMPLATE_HASH",
    "SFU_POD_SUFFIX_ALPHABET",
    "SFU_POD_SUFFIX_LENGTH",
    "TURN_SECRET_ROTATED_AT",
    "Component",
    "Flow",
    "Manifest",
    "ManifestError",
    "OperatorContext",
    "Peer",
    "desired_objects",
    "hosts_rooms_patch",
    "pod_template_hash",
    "selector_labels",
    "service_account",
    "sfu_disruption_budget",
    "sfu_headless_service",
    "sfu_headless_service_name",
    "sfu_network_policy",
    "sfu_pod",
    "sfu_pod_name",
    "sfu_public_url",
    "sfu_signalling_service",
    "traffic_matrix",
    "turn_deployment",
    "turn_disruption_budget",
    "turn_network_policy",
    "turn_secret",
    "turn_secret_name",
    "turn_secrets_from_secret",
    "turn_service",
    "turn_uris",
    "validate_public_url_template",
    "workload_name",
]
