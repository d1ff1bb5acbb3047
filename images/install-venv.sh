#!/bin/sh
# Build stage helper: a virtualenv at /opt/switchboard with one image's locked dependencies
# (hash-checked, from the wheels copied in; no index, no cache) and the project's wheel.
# Only the packages an image runs are kept: the dev tooling and the local cluster are not.
set -eu
lock=$1
python3 -m venv --without-pip /opt/switchboard
pip() { /opt/build/bin/pip --python /opt/switchboard/bin/python "$@"; }
pip install --no-index --no-cache-dir --find-links /wheels --require-hashes --only-binary :all: -r "$lock"
pip install --no-index --no-cache-dir --no-deps /dist/switchboard-*.whl
site=$(/opt/switchboard/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -rf "$site/switchboard_dev" "$site/switchboard_localcluster"
rm -f /opt/switchboard/bin/switchboard-dev /opt/switchboard/bin/switchboard-local \
  /opt/switchboard/bin/switchboard-testapp /opt/switchboard/bin/switchboard-crds
