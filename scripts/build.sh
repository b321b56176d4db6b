#!/usr/bin/env bash
# Configures and builds mgreg into ./build (or $MGREG_BUILD_DIR). Extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${MGREG_BUILD_DIR:-build}"
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
if [ -f "$build_dir/CMakeCache.txt" ]; then generator=(); fi
# ccache in a cache outside the clone (scripts/ccache-env.sh; MGREG_CCACHE=0 turns it off).
source scripts/ccache-env.sh
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${mgreg_ccache_args[@]}" "$@" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
