#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install what is missing, build, and run the
# whole test suite. Test data: $MGREG_TESTDATA, default ../shared/testdata/tf.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh all
scripts/build.sh -DMGREG_BUILD_TESTS=ON
build_dir="${MGREG_BUILD_DIR:-build}"
ctest --test-dir "$build_dir" --output-on-failure -j 2 --timeout 600
