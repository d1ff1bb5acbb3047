"""Label and annotation keys (and their fixed values) that Switchboard reads or writes."""

from typing import Final

from switchboard_api.resources import GROUP

# Switchboard's own keys.
REGION: Final = f"{GROUP}/region"
"""Label on every object the operator creates for a Region: the Region's name."""

ROOM: Final = f"{GROUP}/room"
"""Label naming a Room: its name only (a `/` is not allowed in label values), so it is read
together with the labelled object's namespace."""

POD_UID: Final = f"{GROUP}/pod-uid"
"""Annotation recording the SFU pod UID a resource was bound to."""

DRAIN: Final = f"{GROUP}/drain"
"""Annotation on an SFU pod: `"true"` asks the control plane to drain it (no new rooms,
existing rooms migrate or end) before it is deleted."""

LEADER: Final = f"{GROUP}/leader"
"""Label the leading operator replica sets on its own pod (`"true"`): the operator
Service selects it."""

DRAIN_DEADLINE: Final = f"{GROUP}/drain-deadline"
"""Annotation on a draining SFU pod: RFC 3339 time after which it is deleted regardless."""

# Recommended labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/).
APP_NAME: Final = "app.kubernetes.io/name"
APP_INSTANCE: Final = "app.kubernetes.io/instance"
APP_COMPONENT: Final = "app.kubernetes.io/component"
APP_PART_OF: Final = "app.kubernetes.io/part-of"
APP_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
APP_VERSION: Final = "app.kubernetes.io/version"

PART_OF_VALUE: Final = "switchboard"
MANAGED_BY_VALUE: Final = "switchboard-operator"
COMPONENT_SFU: Final = "sfu"
COMPONENT_TURN: Final = "turn"
COMPONENT_OPERATOR: Final = "operator"

# Well-known Kubernetes keys Switchboard relies on.
TOPOLOGY_REGION: Final = "topology.kubernetes.io/region"
TOPOLOGY_ZONE: Final = "topology.kubernetes.io/zone"
POD_SECURITY_ENFORCE: Final = "pod-security.kubernetes.io/enforce"

CORDONED: Final = f"{GROUP}/cordoned"
"""Annotation on an SFU pod the autoscaler is removing: RFC 3339 time it was cordoned. A
cordoned pod takes no new rooms; its rooms stay until they end (nobody is moved), and
the pod is deleted once it holds none. Unlike a drain, it is lifted if the pod is needed."""

# Keys node autoscalers read: an SFU pod that hosts rooms must not be evicted by them.
CLUSTER_AUTOSCALER_SAFE_TO_EVICT: Final = "cluster-autoscaler.kubernetes.io/safe-to-evict"
KARPENTER_DO_NOT_DISRUPT: Final = "karpenter.sh/do-not-disrupt"
