#!/usr/bin/env bash
# Debian packages the build and the renderer need: cmake (message generation), EGL + Mesa
# (offscreen OpenGL on llvmpipe for the camera renderer), iproute2/util-linux (private
# network namespace for ROS tests). Installs what is missing when run as root; otherwise
# prints the command to run.
set -euo pipefail
PACKAGES=(cmake make g++ libegl1 libegl-mesa0 libgl1-mesa-dri iproute2 util-linux)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system packages missing: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
