#!/usr/bin/env bash
# Builds mgreg with sanitizers and runs tests under them (-O1 -g, GCC by default; set
# CXX=clang++ for clang).
#   scripts/sanitize.sh address   ASan + UBSan into build-asan: the unit and server tests
#                                 (tests/common, proto, metagraph, storage, server, fuzz
#                                 regressions). The end-to-end and packaging tests
#                                 (tests/e2e) are left out: they start real processes and
#                                 take several minutes even uninstrumented.
#   scripts/sanitize.sh thread    TSan into build-tsan: the concurrency tests of
#                                 tests/server and tests/storage, except those that go
#                                 through a real gRPC server (see below).
# Environment: MGREG_SANITIZE_TESTS='regex' runs only the matching tests of that set;
# MGREG_SANITIZE_JOBS build parallelism (default 2); MGREG_SOURCE_DIR (default: this
# checkout) to build another source tree, e.g. a snapshot taken mid-change.
# Every sanitizer report fails its test (ASan/UBSan stop at the first; TSan reports all
# races of a test, then exits 66); third-party false positives are
# suppressed narrowly in scripts/tsan.supp / scripts/ubsan.supp / scripts/lsan.supp.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mode="${1:-address}"
source_dir="${MGREG_SOURCE_DIR:-.}"
jobs="${MGREG_SANITIZE_JOBS:-2}"

case "$mode" in
  address|address,undefined|asan)
    build_dir=build-asan; flags="address,undefined"; dirs="common proto metagraph storage server fuzz"
    exclude="" ;;
  thread|tsan)
    # Not the tests that talk through a real gRPC server and client: Debian's gRPC is not
    # instrumented, and its completion queues and pollers hand calls between threads
    # through atomics TSan cannot see, so those tests drown in thousands of reports at
    # the gRPC boundary (measured: ~2,500 in registry_server_test + uploads_retention_test
    # before their 300 s timeout). The service core they exercise runs under TSan through
    # service_concurrency_test instead. MGREG_TSAN_EXCLUDE='' runs them anyway.
    build_dir=build-tsan; flags="thread"; dirs="server storage"
    exclude="${MGREG_TSAN_EXCLUDE-^(registry_server_test|uploads_retention_test|watch_sync_test|prod_server_test|fault_server_test)\$}" ;;
  *) echo "usage: $0 [address|thread]" >&2; exit 2 ;;
esac

# Configured every time (cheap), so the test listing below sees newly added tests.
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
if [ -f "$build_dir/CMakeCache.txt" ]; then generator=(); fi
cmake -S "$source_dir" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMGREG_SANITIZE="$flags" -DMGREG_BUILD_TESTS=ON -DMGREG_BUILD_BENCH=OFF >/dev/null
# The tests registered by those folders' CMakeLists (tests/<dir>/CMakeLists.txt in the
# add_test backtrace of CTest's own listing), with their executables' target names
# (mgreg_add_test: the test's name; fuzz regressions: <target>_regression).
mapfile -t rows < <(ctest --test-dir "$build_dir" --show-only=json-v1 | python3 -c '
import json, os, sys
dirs = sys.argv[1].split()
data = json.load(sys.stdin)
graph = data["backtraceGraph"]
for t in data["tests"]:
    n, where = t.get("backtrace"), set()
    while n is not None:
        node = graph["nodes"][n]
        parts = graph["files"][node["file"]].split(os.sep)
        if len(parts) >= 3 and parts[-3] == "tests" and parts[-1] == "CMakeLists.txt":
            where.add(parts[-2])
        n = node.get("parent")
    if where & set(dirs):
        name = t["name"]
        target = name[len("fuzz_regression_"):] + "_regression" if name.startswith("fuzz_regression_") else name
        print(name, target)
' "$dirs")
tests=(); targets=()
for row in "${rows[@]}"; do
  name="${row%% *}"
  if [ -n "${MGREG_SANITIZE_TESTS:-}" ] && ! [[ "$name" =~ $MGREG_SANITIZE_TESTS ]]; then continue; fi
  if [ -n "$exclude" ] && [[ "$name" =~ $exclude ]]; then continue; fi
  tests+=("$name"); targets+=("${row##* }")
done
if [ ${#tests[@]} -eq 0 ]; then
  echo "sanitize $mode: no test matches MGREG_SANITIZE_TESTS='${MGREG_SANITIZE_TESTS:-}'" >&2
  exit 2
fi
# Tests of tests/server start the instrumented binaries (metrics, production): build them
# only when such a test is selected.
if printf '%s\n' "${tests[@]}" | grep -qE "^prod_"; then
  targets+=(mgreg-server mgreg)
fi
regex="^($(IFS='|'; echo "${tests[*]}"))\$"
start=$(date +%s)
cmake --build "$build_dir" -j "$jobs" --target "${targets[@]}"
built=$(date +%s)

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=0"
export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$root/scripts/ubsan.supp"
export TSAN_OPTIONS="halt_on_error=0:exitcode=66:second_deadlock_stack=1:history_size=4:suppressions=$root/scripts/tsan.supp"
rc=0
ctest --test-dir "$build_dir" --output-on-failure -j 2 --timeout 1200 -R "$regex" || rc=$?
end=$(date +%s)
echo "sanitize $mode: build $((built - start))s, tests $((end - built))s, exit $rc"
exit $rc
