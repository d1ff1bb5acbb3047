#!/usr/bin/env bash
# Builds the pinned helm from the Go module proxy into a cache directory outside the
# repository, keyed by version.   usage: build.sh OUTDIR   (no-op when already built)
# Two builds at once (two checkouts bootstrapping) each write their own temporary file.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR}
version=$(awk '$1 == "require" && $2 == "helm.sh/helm/v3" {print $3}' "$here/go.mod")
[ -n "$version" ] || { echo "build.sh: cannot read the helm pin from go.mod" >&2; exit 2; }
cd "$here"
# Like helm's own Makefile: the default Kubernetes version for `helm template` and
# `helm lint` is the client-go version helm was built with (v0.N.M -> 1.N).
client_go=$(go list -m -f '{{.Version}}' k8s.io/client-go)
k8s_minor=$(echo "$client_go" | cut -d. -f2)
stamp="$version k8s1.$k8s_minor"
if [ -x "$out/helm" ] && [ "$(cat "$out/.complete" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
mkdir -p "$out"
echo "building helm $version into $out" >&2
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/helm.tmp.$$" helm.sh/helm/v3/cmd/helm
mv -f "$out/helm.tmp.$$" "$out/helm"
echo "$stamp" > "$out/.complete"
