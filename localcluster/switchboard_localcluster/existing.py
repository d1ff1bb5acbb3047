"""An already-running cluster (e.g. kind) named by KUBECONFIG, for tests that need no node agent.

It offers the same client-side surface as :class:`ControlPlane` where it can; what only
a self-started control plane has (the audit log, minting user certificates) is absent,
and tests needing it skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

USE_EXISTING_ENV = "USE_EXISTING_CLUSTER"


def wants_existing_cluster() -> bool:
    """The envtest convention: ``USE_EXISTING_CLUSTER=true`` selects $KUBECONFIG's cluster."""
    return os.environ.get(USE_EXISTING_ENV, "").lower() in {"1", "true", "yes"}


class ExistingCluster:
    """A cluster this process did not start and must not stop."""

    audit_log = None

    def __init__(self, kubeconfig: Path | None = None, kubectl: Path | None = None) -> None:
        path = kubeconfig or Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config"))
        if not path.is_file():
            raise FileNotFoundError(f"{USE_EXISTING_ENV} is set but kubeconfig {path} is missing")
        self.kubeconfig = path
        found = kubectl or (Path(w) if (w := shutil.which("kubectl")) else None)
        if found is None:
            raise FileNotFoundError("kubectl is needed on PATH to use an existing cluster")
        self._kubectl = found

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        kubeconfig: Path | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self._kubectl), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            check=check,
        )

    def stop(self) -> None:
        """Nothing to stop: this process does not own the cluster."""

    cleanup = stop
