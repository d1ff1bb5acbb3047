"""Label and annotation keys that only the Region's workloads use.

They belong with the other keys in switchboard_api.labels; until they move there, this
module is their one home.
"""

from typing import Final

from switchboard_api.resources import GROUP

HOSTS_ROOMS: Final = f"{GROUP}/hosts-rooms"
"""Label on an SFU pod, `"true"` while rooms are placed on it (kept by placement): the
SFU PodDisruptionBudget covers exactly these pods, so their eviction is refused."""
HOSTS_ROOMS_VALUE: Final = "true"

POD_TEMPLATE_HASH: Final = f"{GROUP}/pod-template-hash"
"""Label on an SFU pod: hash of the pod template it was built from. A pod whose value
differs from the current `pod_template_hash` runs an outdated template (image drift)."""

TURN_SECRET_ROTATED_AT: Final = f"{GROUP}/turn-secret-rotated-at"
"""Annotation on the TURN Secret: RFC 3339 time its current rotation phase began."""
