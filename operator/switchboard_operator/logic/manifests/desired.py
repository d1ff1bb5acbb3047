"""Everything a Region produces except its SFU pods, in the order to apply it.

SFU pods are counted, created and rolled by the reconciler (see `sfu.sfu_pod`); this is the
rest, which is simply kept equal to what is built here.
"""

from typing import Final

from switchboard_api.region import Region
from switchboard_operator.logic.manifests.accounts import service_account
from switchboard_operator.logic.manifests.context import OperatorContext
from switchboard_operator.logic.manifests.disruption import (
    sfu_disruption_budget,
    turn_disruption_budget,
)
from switchboard_operator.logic.manifests.meta import Component, Manifest
from switchboard_operator.logic.manifests.network import sfu_network_policy, turn_network_policy
from switchboard_operator.logic.manifests.services import (
    sfu_headless_service,
    sfu_signalling_service,
    turn_service,
)
from switchboard_operator.logic.manifests.sfu import pod_template_hash
from switchboard_operator.logic.manifests.turn import turn_deployment, turn_secret
from switchboard_operator.logic.manifests.urls import validate_public_url_template
from switchboard_turn.coturn import TurnSecrets

APPLY_ORDER: Final = (
    "ServiceAccount",
    "Secret",
    "Service",
    "Deployment",
    "PodDisruptionBudget",
    "NetworkPolicy",
)


def desired_objects(
    region: Region,
    ctx: OperatorContext,
    *,
    turn_secrets: TurnSecrets | None = None,
    turn_secret_rotated_at: str | None = None,
) -> list[Manifest]:
    """The Region's ServiceAccounts, Secret, Services, Deployment, PodDisruptionBudgets and
    NetworkPolicies, in apply order (identities and secrets before what uses them).

    `turn_secrets` are required when TURN is enabled: the caller reads them from the
    existing Secret, or draws a new one once, so they survive every reconcile. Raises
    ManifestError when the Region cannot be built (also for what only SFU pods use, so the
    Region turns Degraded before any pod is attempted).
    """
    validate_public_url_template(region)
    pod_template_hash(region, ctx)
    objects = [
        service_account(region, Component.SFU),
        sfu_headless_service(region),
        sfu_signalling_service(region),
        sfu_disruption_budget(region),
        sfu_network_policy(region, ctx),
    ]
    if region.spec.turn.enabled:
        if turn_secrets is None:
            raise ValueError("TURN is enabled: pass the Region's TURN secrets")
        objects += [
            service_account(region, Component.TURN),
            turn_secret(region, turn_secrets, rotated_at=turn_secret_rotated_at),
            turn_service(region, ctx),
            turn_deployment(region, ctx),
            turn_disruption_budget(region),
            turn_network_policy(region, ctx),
        ]
    # A stable sort: within a kind, SFU objects stay before TURN objects.
    return sorted(objects, key=lambda manifest: APPLY_ORDER.index(manifest["kind"]))
