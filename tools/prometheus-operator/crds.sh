#!/usr/bin/env bash
# Copies the pinned Prometheus Operator's generated CRDs (the upstream module's own files,
# from the Go module proxy, checked against go.sum) into a cache directory outside the
# repository.   usage: crds.sh OUTDIR   (no-op when already there)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: crds.sh OUTDIR}
module=github.com/prometheus-operator/prometheus-operator
version=$(awk -v m="$module" '$1 == "require" && $2 == m {print $3}' "$here/go.mod")
[ -n "$version" ] || { echo "crds.sh: cannot read the $module pin from go.mod" >&2; exit 2; }
kinds=(servicemonitors podmonitors prometheusrules)
if [ "$(cat "$out/.complete" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
cd "$here"
dir=$(go mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "crds.sh: go mod download gave no directory for $module" >&2; exit 1; }
mkdir -p "$out"
for kind in "${kinds[@]}"; do
  install -m 0644 "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$out/"
done
echo "$version" > "$out/.complete"
