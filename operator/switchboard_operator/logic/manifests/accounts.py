"""One ServiceAccount per workload. Neither workload calls the Kubernetes API, so they
are bound to no Role and mount no API token."""

from switchboard_api.region import Region
from switchboard_operator.logic.manifests.meta import (
    Component,
    Manifest,
    object_meta,
    workload_name,
)


def service_account(region: Region, component: Component) -> Manifest:
    """The workload's identity; the SFU's projected report token is issued for it."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(region, workload_name(region, component), component),
        "automountServiceAccountToken": False,
    }
