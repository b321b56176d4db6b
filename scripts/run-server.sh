#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install what is missing, build, and run
# mgreg-server on an embedded RocksDB under ./data. Extra args go to mgreg-server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh build
scripts/build.sh -DMGREG_BUILD_TESTS=OFF -DMGREG_BUILD_BENCH=OFF
build_dir="${MGREG_BUILD_DIR:-build}"
exec "$build_dir/server/mgreg-server" --data-dir ./data \
  --listen "${MGREG_LISTEN:-127.0.0.1:8470}" "$@"
