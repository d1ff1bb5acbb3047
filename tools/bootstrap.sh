#!/usr/bin/env bash
# Installs everything Switchboard's demo and tests need on a fresh Debian machine:
# Debian packages, the project's virtualenv, and the pinned Kubernetes binaries
# (built from the Go module proxy into ~/.cache/switchboard, once per version).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# podman + runc run the images (crun refuses this cgroup layout); mmdebstrap builds their
# Debian bases without a registry; skopeo copies images to registries. prometheus: Debian's
# promtool checks and unit-tests the alerting rules (the server the tests run is built from
# tools/prometheus: Debian's lacks Kubernetes service discovery). libnss3-tools' certutil
# makes Chromium trust the tests' certificate authority.
APT_PACKAGES=(coturn iproute2 util-linux chromium chromium-driver curl openssl
  podman buildah runc conmon mmdebstrap uidmap fuse-overlayfs skopeo prometheus libnss3-tools)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.switchboard-installed
# The SFU's native module (sfu/fastpath, Rust) is built by this install: rebuild when it changes.
native_changed() { [ -n "$(find sfu/fastpath -path sfu/fastpath/target -prune -o -newer "$stamp" -type f -print -quit)" ]; }
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || native_changed; then
  echo "bootstrap: installing the project into .venv" >&2
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[dev]"
  touch "$stamp"
fi

.venv/bin/switchboard-local build >/dev/null
.venv/bin/python -c 'from switchboard_dev.helm import helm_binary; helm_binary()'
.venv/bin/python -c 'from switchboard_dev.monitoring_crds import crd_dir; crd_dir()'
.venv/bin/python -c 'from switchboard_dev.prometheus import prometheus_binary; prometheus_binary()'
