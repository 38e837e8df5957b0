#!/usr/bin/env bash
# Run a command with DDS confined to loopback, inside a private network namespace when the
# kernel lets us make one (root, or unprivileged user namespaces), so no DDS packet can
# reach another host even if a profile is wrong. Falls back to the host namespace with
# ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and the loopback-only Fast DDS profile.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$ROOT/config/fastdds.xml}
export AMENT_PREFIX_PATH=${AMENT_PREFIX_PATH:-$ROOT/.venv}
if [ "${AD_PERCEPTION_NO_NETNS:-0}" != "1" ] && command -v unshare >/dev/null \
   && unshare -n true 2>/dev/null; then
  exec unshare -n -- sh -c 'ip link set lo up 2>/dev/null || true; exec "$@"' sh "$@"
elif [ "${AD_PERCEPTION_NO_NETNS:-0}" != "1" ] && command -v unshare >/dev/null \
   && unshare -rn true 2>/dev/null; then
  exec unshare -rn -- sh -c 'ip link set lo up 2>/dev/null || true; exec "$@"' sh "$@"
fi
echo "run_isolated: no private network namespace available; using loopback-only DDS settings" >&2
exec "$@"
