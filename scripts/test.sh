#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install what is missing, build, and run the
# whole test suite. Test data: $MGREG_TESTDATA, default ../shared/testdata/tf.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh all
scripts/build.sh -DMGREG_BUILD_TESTS=ON
build_dir="${MGREG_BUILD_DIR:-build}"
# The RADOS store's tests need a Ceph cluster: where ceph-mon is installed (install-deps.sh
# all), a single-node one runs for the whole script (scripts/ceph-dev.sh) and is stopped on
# exit. MGREG_TEST_CEPH_CONF=FILE uses an existing cluster instead. Without either, the RADOS
# tests skip with a message saying so.
if [ -z "${MGREG_TEST_CEPH_CONF:-}" ] && command -v ceph-mon >/dev/null 2>&1; then
  ceph_dir="$(mktemp -d "${TMPDIR:-/tmp}/mgreg-ceph.XXXXXX")"
  trap 'scripts/ceph-dev.sh stop "$ceph_dir"' EXIT
  scripts/ceph-dev.sh start "$ceph_dir"
  export MGREG_TEST_CEPH_CONF="$ceph_dir/ceph.conf"
elif [ -z "${MGREG_TEST_CEPH_CONF:-}" ]; then
  echo "test.sh: ceph-mon not installed: the RADOS store tests will be SKIPPED" \
       "(scripts/install-deps.sh rados installs it)" >&2
fi
ctest --test-dir "$build_dir" --output-on-failure -j 2 --timeout 600

# The hardening stages (ASan + UBSan, TSan, fuzzing) run after this in .ci/run, which
# lists every CI stage; `MGREG_CI_STAGES=asan .ci/run` runs one of them.
