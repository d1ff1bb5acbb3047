#!/usr/bin/env bash
# Builds the pinned Prometheus (with kubernetes_sd_configs, which Debian's package lacks)
# from the Go module proxy into a cache directory outside the repository, keyed by version.
#   usage: build.sh OUTDIR   (no-op when already built)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR}
module=github.com/prometheus/prometheus
version=$(awk -v m="$module" '$1 == "require" && $2 == m {print $3}' "$here/go.mod")
[ -n "$version" ] || { echo "build.sh: cannot read the $module pin from go.mod" >&2; exit 2; }
if [ -x "$out/prometheus" ] && [ "$(cat "$out/.complete" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
mkdir -p "$out"
echo "building prometheus $version into $out" >&2
cd "$here"
# Prometheus 2.x is module version v0.<minor>: stamp the release it is (2.<minor>.<patch>).
release="2.${version#v0.}"
ldflags="-s -w -X github.com/prometheus/common/version.Version=$release"
ldflags+=" -X github.com/prometheus/common/version.Branch=switchboard-tools"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/prometheus.tmp.$$" "$module/cmd/prometheus"
mv -f "$out/prometheus.tmp.$$" "$out/prometheus"
echo "$version" > "$out/.complete"
