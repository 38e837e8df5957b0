#!/usr/bin/env bash
# Build the message packages the ROS distro lacks (vision_msgs, tf2_msgs) into the venv.
#
# On a full ROS 2 install these are importable already and nothing is built. In a pip
# environment (ROS 2 Kilted wheels) they are generated from interfaces/ with rosidl and
# installed into $VENV, so nothing has to be sourced afterwards.
set -euo pipefail
VENV=${1:-.venv}
VENV=$(cd "$VENV" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$VENV/bin/python"
BUILD="$ROOT/build/interfaces"

missing=()
for pkg in vision_msgs tf2_msgs; do
  if ! "$PY" -c "import ${pkg}.msg" >/dev/null 2>&1; then missing+=("$pkg"); fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "interfaces: vision_msgs and tf2_msgs already importable, nothing to build"
  exit 0
fi
command -v cmake >/dev/null || { echo "interfaces: cmake not found; install it (apt-get install cmake)" >&2; exit 1; }

# The wheels' CMake exports name the build machine's Python and numpy include paths;
# point them at this venv's (idempotent, fast).
read -r PYINC NPINC < <("$PY" -c "import sysconfig, numpy; print(sysconfig.get_paths()['include'], numpy.get_include())")
grep -rlE "/opt/python/cp311-cp311/(include/python3.11|lib/python3.11/site-packages/numpy/_core/include)" \
  "$VENV/share" --include='*.cmake' 2>/dev/null | while read -r f; do
  sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#${NPINC}#g" \
         -e "s#/opt/python/cp311-cp311/include/python3.11#${PYINC}#g" "$f"
done

for pkg in "${missing[@]}"; do
  echo "interfaces: building $pkg into $VENV"
  rm -rf "$BUILD/$pkg"; mkdir -p "$BUILD/$pkg"
  (cd "$BUILD/$pkg" &&
    AMENT_PREFIX_PATH="$VENV" "$VENV/bin/python" -c "import sys" &&
    PATH="$VENV/bin:$PATH" AMENT_PREFIX_PATH="$VENV" cmake "$ROOT/interfaces/$pkg" \
      -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF >cmake.log 2>&1 &&
    PATH="$VENV/bin:$PATH" make -j"$(nproc)" install >make.log 2>&1) || {
      echo "interfaces: building $pkg failed; see $BUILD/$pkg/cmake.log and make.log" >&2
      tail -20 "$BUILD/$pkg"/*.log >&2; exit 1; }
done
"$PY" -c "import vision_msgs.msg, tf2_msgs.msg" || {
  echo "interfaces: built but not importable from $PY" >&2; exit 1; }
echo "interfaces: done"
