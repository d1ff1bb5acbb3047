#!/usr/bin/env bash
# Builds the pinned Kubernetes control-plane binaries and etcd from the Go module proxy
# into a cache directory outside the repository, keyed by version.
#   usage: build.sh OUTDIR   build unless OUTDIR already holds a complete build (.complete)
#          build.sh --key    print the key a complete build writes to .complete
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pin() { awk -v mod="$1" '$1 == "require" && $2 == mod {print $3}' "$here/go.mod"; }
version=$(pin k8s.io/kubernetes)
etcd_version=$(pin go.etcd.io/etcd/server/v3)
[ -n "$version" ] || { echo "build.sh: cannot read the k8s.io/kubernetes pin from go.mod" >&2; exit 2; }
[ -n "$etcd_version" ] || { echo "build.sh: cannot read the etcd server pin from go.mod" >&2; exit 2; }
# A cache built before etcd was part of it holds only the Kubernetes version: it rebuilds.
key="$version etcd $etcd_version"
if [ "${1:-}" = "--key" ]; then
  echo "$key"
  exit 0
fi
out=${1:?usage: build.sh OUTDIR | --key}
if [ -f "$out/.complete" ] && [ "$(cat "$out/.complete")" = "$key" ]; then
  exit 0
fi
minor=$(echo "$version" | cut -d. -f2)
commands=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
mkdir -p "$out"
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$here"
echo "building Kubernetes $version control plane and etcd $etcd_version into $out" \
  "(cold builds take tens of minutes)" >&2
build() {  # build NAME PACKAGE [LDFLAGS]
  local start
  start=$(date +%s)
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w${3:-}" -o "$tmp/$1" "$2"
  echo "built $1 in $(( $(date +%s) - start ))s" >&2
}
for cmd in "${commands[@]}"; do build "$cmd" "k8s.io/kubernetes/cmd/$cmd" "$ldflags"; done
build etcd ./etcd
for cmd in "${commands[@]}" etcd; do mv -f "$tmp/$cmd" "$out/$cmd"; done
echo "$key" > "$out/.complete"
