"""Default values shared by the CRD schemas, the operator and the SFU.

The Region and Room models use these as field defaults, so they are also what the API
server fills in (the generated CRDs carry them as OpenAPI `default`s).
"""

from typing import Final

# Images are not defaults of the API: an unset Region image is the operator's, which the
# Helm chart names (one version, one place), so a chart upgrade reaches every Region.

REGION_NAMESPACE: Final = "switchboard-media"
"""Namespace a Region's SFU and TURN workloads run in when its spec names none."""

SFU_MIN_REPLICAS: Final = 1
SFU_MAX_REPLICAS: Final = 10
SFU_CAPACITY_PER_POD: Final = 100.0
"""Capacity units one SFU pod offers (see switchboard_api.contract for the unit)."""
SFU_HIGH_WATER_MARK: Final = 0.8
"""Fraction of a pod's capacity above which placement prefers other pods."""
SFU_TARGET_UTILIZATION: Final = 0.6
"""Autoscaling target: the region's reserved load over its total capacity."""
SFU_SCALE_DOWN_STABILIZATION_SECONDS: Final = 300
SFU_DRAIN_GRACE_SECONDS: Final = 600
"""How long a draining SFU pod waits for its rooms to migrate or end before it exits."""
SFU_REBALANCE_MAX_MOVES_PER_MINUTE: Final = 10
"""Rooms the optional rebalance may move off hot pods of one region in any minute."""

TURN_REPLICAS: Final = 1
TURN_CREDENTIAL_TTL_SECONDS: Final = 3600
TURN_REALM: Final = "switchboard.dev"

ROOM_MAX_PARTICIPANTS: Final = 10
ROOM_EMPTY_TIMEOUT_SECONDS: Final = 300
ROOM_VIDEO_BITRATE_KBPS: Final = 1000

REPORT_INTERVAL_SECONDS: Final = 1.0
"""How often an SFU posts its capacity report (the contract allows at most 2 s)."""
FAILOVER_TIMEOUT_SECONDS: Final = 10.0
"""Missing reports for this long make the control plane treat an SFU pod as lost."""
LEASE_SECONDS: Final = 8.0
"""The lease an acknowledgement grants an SFU (docs/contract.md, "Leases"); shorter than the
failover timeout, longer than a leader takeover with its restore."""
JOIN_TOKEN_TTL_SECONDS: Final = 300
