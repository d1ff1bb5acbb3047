#!/usr/bin/env bash
# Builds the pinned helm from the Go module proxy into a cache directory outside the
# repository, keyed by version.   usage: build.sh OUTDIR   (no-op when already built)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR}
version=$(awk '$1 == "require" && $2 == "helm.sh/helm/v3" {print $3}' "$here/go.mod")
[ -n "$version" ] || { echo "build.sh: cannot read the helm pin from go.mod" >&2; exit 2; }
if [ -x "$out/helm" ] && [ "$(cat "$out/.complete" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
mkdir -p "$out"
cd "$here"
echo "building helm $version into $out" >&2
CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version" \
  -o "$out/helm.tmp" helm.sh/helm/v3/cmd/helm
mv -f "$out/helm.tmp" "$out/helm"
echo "$version" > "$out/.complete"
