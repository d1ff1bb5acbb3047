#!/usr/bin/env bash
# Builds the pinned Kubernetes control-plane binaries from the Go module proxy
# into a cache directory outside the repository, keyed by version.
#   usage: build.sh OUTDIR
# Nothing is rebuilt when OUTDIR already holds a complete build (see .complete).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR}
version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/go.mod")
[ -n "$version" ] || { echo "build.sh: cannot read the k8s.io/kubernetes pin from go.mod" >&2; exit 2; }
if [ -f "$out/.complete" ] && [ "$(cat "$out/.complete")" = "$version" ]; then
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
echo "building Kubernetes $version control plane into $out (cold builds take tens of minutes)" >&2
for cmd in "${commands[@]}"; do
  start=$(date +%s)
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w$ldflags" -o "$tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  echo "built $cmd in $(( $(date +%s) - start ))s" >&2
done
for cmd in "${commands[@]}"; do mv -f "$tmp/$cmd" "$out/$cmd"; done
echo "$version" > "$out/.complete"
