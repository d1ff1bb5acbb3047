#!/usr/bin/env bash
# Runs a command inside a fresh network namespace that has only loopback, so the tests'
# WebRTC and cluster traffic cannot leave the machine and ICE sees only 127.0.0.0/8.
set -euo pipefail
if [ "${SWITCHBOARD_IN_NETNS:-}" = 1 ]; then exec "$@"; fi
export SWITCHBOARD_IN_NETNS=1
if [ "$(id -u)" -eq 0 ]; then
  exec unshare --net -- sh -c 'ip link set lo up && exec "$@"' netns "$@"
fi
exec unshare --user --map-root-user --net -- sh -c 'ip link set lo up && exec "$@"' netns "$@"
