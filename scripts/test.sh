#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install what is missing, build, and run the
# whole test suite. Test data: $MGREG_TESTDATA, default ../shared/testdata/tf.
set -euo pipefail
cd "$(dirname "$0")/.."
test_start=$(date +%s)
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

# Optional hardening stage (README "Fuzzing and sanitizers"), after the normal suite.
# MGREG_HARDENING: empty/0 = none; 1 = all of fuzz, asan, tsan; or a comma list of them.
# Each stage builds its own tree (build-fuzz, build-asan, build-tsan) and is bounded:
# fuzz runs each target MGREG_HARDENING_FUZZ_SECONDS (default 20) with a fixed seed;
# asan runs MGREG_HARDENING_ASAN_TESTS (a ctest regex, default: the common, proto,
# metagraph, storage and fuzz-regression tests and the server tests without a gRPC
# transport); tsan the concurrency tests (tests/server, tests/storage); docker builds the
# Docker image with podman and tests it (scripts/docker-test.sh; prints SKIPPED where the
# machine does not run containers).
# MGREG_HARDENING_SKIP_AFTER=S: a stage that would start more than S seconds after this
# script started is skipped (and says so), so a slow machine stays within CI's budget.
hardening="${MGREG_HARDENING:-0}"
if [ "$hardening" = 1 ]; then hardening="asan,tsan,fuzz"; fi
if [ "$hardening" != 0 ] && [ -n "$hardening" ]; then
  scripts/install-deps.sh hardening
  stage_times=()
  for stage in ${hardening//,/ }; do
    t0=$(date +%s)
    if [ -n "${MGREG_HARDENING_SKIP_AFTER:-}" ] &&
       [ $((t0 - test_start)) -gt "$MGREG_HARDENING_SKIP_AFTER" ]; then
      echo "hardening: skipping $stage: $((t0 - test_start))s elapsed, over MGREG_HARDENING_SKIP_AFTER=${MGREG_HARDENING_SKIP_AFTER}s"
      stage_times+=("$stage skipped")
      continue
    fi
    case "$stage" in
      fuzz) scripts/fuzz.sh "${MGREG_HARDENING_FUZZ_SECONDS:-20}" ;;
      asan) MGREG_SANITIZE_TESTS="${MGREG_HARDENING_ASAN_TESTS:-^(common_|tf_proto_|metagraph_|storage_|fuzz_regression_|service_concurrency_test|export_cache_test|prod_auth_test)}" \
              scripts/sanitize.sh address ;;
      tsan) scripts/sanitize.sh thread ;;
      docker) scripts/docker-test.sh ;;
      *) echo "MGREG_HARDENING: unknown stage '$stage' (fuzz, asan, tsan, docker)" >&2; exit 2 ;;
    esac
    stage_times+=("$stage $(( $(date +%s) - t0 ))s")
  done
  echo "hardening stages: ${stage_times[*]}"
fi
