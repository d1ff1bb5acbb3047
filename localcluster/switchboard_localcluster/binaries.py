"""Locating the control-plane binaries: KUBEBUILDER_ASSETS, else a per-version cache.

The pins live in ``tools/kube/go.mod`` (the Go tools module that builds
kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from the
``k8s.io/kubernetes`` module, and etcd from ``go.etcd.io/etcd/server/v3`` at the
version that Kubernetes requires); binaries are cached outside the repository under
``$SWITCHBOARD_CACHE`` (default ``~/.cache/switchboard``) keyed by the Kubernetes
version, and ``.complete`` holds the key of the build (``build.sh --key``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
CACHED_COMMANDS = (*KUBE_COMMANDS, "etcd")

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_MODULE = REPO_ROOT / "tools" / "kube"
BUILD_SCRIPT = TOOLS_MODULE / "build.sh"


class BinariesError(RuntimeError):
    """The control-plane binaries cannot be found or built."""


@dataclass(frozen=True)
class KubeBinaries:
    """Paths of every binary a local cluster runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path

    def version_of(self, binary: Path) -> str:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True)
        return out.stdout.strip().split()[-1]


def pinned_version() -> str:
    """The ``k8s.io/kubernetes`` version the tools module requires."""
    go_mod = (TOOLS_MODULE / "go.mod").read_text()
    match = re.search(r"^require k8s\.io/kubernetes (v\S+)$", go_mod, re.MULTILINE)
    if not match:
        raise BinariesError(f"no k8s.io/kubernetes requirement in {TOOLS_MODULE / 'go.mod'}")
    return match.group(1)


def cache_root() -> Path:
    return Path(os.environ.get("SWITCHBOARD_CACHE", Path.home() / ".cache" / "switchboard"))


def kube_cache_dir(version: str | None = None) -> Path:
    return cache_root() / "kube" / (version or pinned_version())


def build_kube(version: str | None = None) -> Path:
    """Build the pinned binaries into the cache unless a complete build is there."""
    out = kube_cache_dir(version)
    if _complete(out):
        return out
    if shutil.which("go") is None:
        raise BinariesError(
            "Go is needed to build the Kubernetes control plane and etcd (or set "
            "KUBEBUILDER_ASSETS to a directory holding etcd, kube-apiserver, "
            "kube-controller-manager, kube-scheduler and kubectl)"
        )
    subprocess.run(["bash", str(BUILD_SCRIPT), str(out)], check=True)
    return out


def _build_key() -> str:
    out = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--key"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def _complete(directory: Path) -> bool:
    stamp = directory / ".complete"
    return (
        all((directory / name).is_file() for name in CACHED_COMMANDS)
        and stamp.is_file()
        and stamp.read_text().strip() == _build_key()
    )


def etcd_binary(base: Path) -> Path:
    """etcd from SWITCHBOARD_ETCD, else the one built next to the Kubernetes binaries."""
    explicit = os.environ.get("SWITCHBOARD_ETCD")
    return Path(explicit) if explicit else base / "etcd"


def resolve(build: bool = True) -> KubeBinaries:
    """Find every binary, building the Kubernetes ones into the cache if needed."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        base = Path(assets)
        etcd = base / "etcd"
        kubectl = base / "kubectl"
        if not kubectl.is_file():
            kubectl = Path(shutil.which("kubectl") or base / "kubectl")
    else:
        base = build_kube() if build else kube_cache_dir()
        etcd = etcd_binary(base)
        kubectl = base / "kubectl"
    binaries = KubeBinaries(
        etcd=etcd,
        kube_apiserver=base / "kube-apiserver",
        kube_controller_manager=base / "kube-controller-manager",
        kube_scheduler=base / "kube-scheduler",
        kubectl=kubectl,
    )
    missing = [str(p) for p in vars(binaries).values() if not Path(p).is_file()]
    if missing:
        raise BinariesError(f"missing control-plane binaries: {', '.join(missing)}")
    return binaries
