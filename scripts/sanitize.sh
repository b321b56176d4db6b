#!/usr/bin/env bash
# Builds mgreg with sanitizers (-O1 -g1) and runs tests under them.
#   scripts/sanitize.sh address   ASan + UBSan + LeakSanitizer into build-asan, with clang
#                                 (MGREG_ASAN_CXX, default clang++; with GCC the fuzz
#                                 targets are left out). The same tree also builds the
#                                 libFuzzer targets (-DMGREG_FUZZ=ON), which scripts/fuzz.sh
#                                 then runs: one build for CI's asan and fuzz stages. Runs
#                                 the WHOLE suite registered in CTest: unit, storage, server
#                                 (through real gRPC servers), the fuzz regressions and the
#                                 end-to-end tests, whose mgreg-server and mgreg processes
#                                 are this tree's instrumented binaries (MGREG_BIN_DIR).
#                                 MGREG_ASAN_EXCLUDE='regex' leaves tests out (default: none).
#   scripts/sanitize.sh thread    TSan into build-tsan (GCC): the tests under tests/server,
#                                 tests/storage and tests/client (subfolders included),
#                                 except those that go through a real gRPC server (see
#                                 below).
# Environment: MGREG_SANITIZE_TESTS='regex' runs only the matching tests of that set;
# MGREG_SANITIZE_JOBS build parallelism (default 2); MGREG_SOURCE_DIR (default: this
# checkout) to build another source tree, e.g. a snapshot taken mid-change;
# MGREG_SANITIZE_CONFIGURE_ONLY=1 configures the tree and stops (scripts/fuzz.sh).
# Every sanitizer report fails its test (ASan/UBSan stop at the first; TSan reports all
# races of a test, then exits 66); third-party false positives are suppressed narrowly in
# scripts/tsan.supp / scripts/ubsan.supp / scripts/lsan.supp, with the evidence.
# Builds use ccache (scripts/ccache-env.sh). Ends with the lines
#   sanitize MODE: build Ns, tests Ns, P passed, F failed, R sanitizer reports, exit N
#   ci-result: passed=P failed=F findings=R          (read by .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mode="${1:-address}"
source_dir="${MGREG_SOURCE_DIR:-.}"
jobs="${MGREG_SANITIZE_JOBS:-2}"

scripts/install-deps.sh hardening >/dev/null
configure=()
case "$mode" in
  address|address,undefined|asan)
    build_dir=build-asan; flags="address,undefined"; dirs="*"
    cxx="${MGREG_ASAN_CXX:-clang++}"
    configure=(-DCMAKE_CXX_COMPILER="$cxx")
    if "$cxx" --version | grep -q clang; then configure+=(-DMGREG_FUZZ=ON); fi
    exclude="${MGREG_ASAN_EXCLUDE-}" ;;
  thread|tsan)
    # Not the tests that talk through a real gRPC server and client: Debian's gRPC is not
    # instrumented, and its completion queues and pollers hand calls between threads
    # through atomics TSan cannot see, so those tests drown in thousands of reports at
    # the gRPC boundary (measured: ~2,500 in registry_server_test + uploads_retention_test
    # before their 300 s timeout). The service core they exercise runs under TSan through
    # service_concurrency_test instead. Also the web pages (tests/server/web: a real server,
    # and a browser). Of tests/client, the unit tests of the client's threaded code run
    # (hashing_file_writer_test: SHA-256 and O_DIRECT writes on two threads;
    # local_file_test: ChunkDigests on 1-64 threads, AtomicFileWriter; checkpoint_dir_test,
    # command_line_test); the rest talk to a server (a real one, the FakeRegistry gRPC
    # service or mgreg-server processes) and are left out here, like the server tests.
    # Nothing else is left out: watch_hub_test and rocksdb_space_test, excluded for a
    # while, were clean once libmgreg_tsan_absl.so came first in their link order again
    # (cmake/MgregHardening.cmake) and watch_hub_test's notify counter outlived the hub.
    # MGREG_TSAN_EXCLUDE='' runs every test of these folders.
    build_dir=build-tsan; flags="thread"; dirs="server storage client"
    exclude="${MGREG_TSAN_EXCLUDE-^(registry_server_test|uploads_retention_test|watch_sync_test|production_server_test|fault_server_test|limits_server_test|upload_edges_server_test|final_digest_server_test|existing_chunks_server_test|tenant_dedup_server_test|stalled_writers_server_test|overwrite_server_test|web_pages_test|browser_test|client_test|hostile_server_test|sync_test|pipelined_push_test|saved_model_client_test|cli_test|saved_model_cli_test)\$}" ;;
  *) echo "usage: $0 [address|thread]" >&2; exit 2 ;;
esac

# Configured every time (cheap), so the test listing below sees newly added tests.
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
# The compiler is chosen when the tree is first configured only (cmake refuses a change).
if [ -f "$build_dir/CMakeCache.txt" ]; then generator=(); configure=(); fi
source scripts/ccache-env.sh
cmake -S "$source_dir" -B "$build_dir" "${generator[@]}" "${mgreg_ccache_args[@]}" "${configure[@]}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMGREG_SANITIZE="$flags" -DMGREG_BUILD_TESTS=ON \
  -DMGREG_BUILD_BENCH=OFF >/dev/null
if [ "${MGREG_SANITIZE_CONFIGURE_ONLY:-0}" = 1 ]; then exit 0; fi
# The tests registered under those folders (a tests/<dir>/.../CMakeLists.txt in the
# add_test backtrace of CTest's own listing; "*" = every test), each with the target that
# builds its executable (the command's program when it lies in the build tree; "-" for a
# test run by another program, e.g. python3; CTest gives no command for an executable not
# built yet, whose target is named after the test: mgreg_add_test in tests/CMakeLists.txt,
# and <target>_regression in tests/fuzz).
mapfile -t rows < <(ctest --test-dir "$build_dir" --show-only=json-v1 | python3 -c '
import json, os, sys
dirs, build = sys.argv[1].split(), os.path.realpath(sys.argv[2])
data = json.load(sys.stdin)
graph = data["backtraceGraph"]
for t in data["tests"]:
    n, where = t.get("backtrace"), set()
    while n is not None:
        node = graph["nodes"][n]
        parts = graph["files"][node["file"]].split(os.sep)
        if "tests" in parts and parts[-1] == "CMakeLists.txt":
            below = parts[len(parts) - parts[::-1].index("tests"):-1]
            if below:
                where.add(below[0])
        n = node.get("parent")
    if dirs == ["*"] or where & set(dirs):
        name, command = t["name"], t.get("command")
        if command is None:  # not built yet: the target is named after the test
            target = name
        else:
            program = os.path.realpath(command[0])
            target = os.path.basename(program) if program.startswith(build + os.sep) else "-"
        print(name, target)
' "$dirs" "$build_dir")
tests=(); targets=()
for row in "${rows[@]}"; do
  name="${row%% *}"
  if [ -n "${MGREG_SANITIZE_TESTS:-}" ] && ! [[ "$name" =~ $MGREG_SANITIZE_TESTS ]]; then continue; fi
  if [ -n "$exclude" ] && [[ "$name" =~ $exclude ]]; then continue; fi
  tests+=("$name")
  if [ "${row##* }" != - ]; then targets+=("${row##* }"); fi
done
if [ ${#tests[@]} -eq 0 ]; then
  echo "sanitize $mode: no test matches MGREG_SANITIZE_TESTS='${MGREG_SANITIZE_TESTS:-}'" >&2
  exit 2
fi
# address: the whole tree (the e2e tests start the instrumented binaries, the packaging
# test installs everything, the fuzz stage runs the fuzz targets). thread: the selected
# tests' executables only; tests of tests/server start the binaries (metrics, production).
if [ "$mode" != thread ] && [ "$mode" != tsan ]; then
  targets=(all)
elif printf '%s\n' "${tests[@]}" | grep -qE "^(metrics_test|auth_test|production_server_test)$"; then
  targets+=(mgreg-server mgreg)
fi
regex="^($(IFS='|'; echo "${tests[*]}"))\$"
start=$(date +%s)
cmake --build "$build_dir" -j "$jobs" --target "${targets[@]}"
built=$(date +%s)

if command -v llvm-symbolizer >/dev/null 2>&1; then
  export ASAN_SYMBOLIZER_PATH="$(command -v llvm-symbolizer)"
fi
# Every report goes to a file of its own under $reports (log_path: one per process), so
# the reports of the servers and CLIs the e2e tests start are counted and shown too, not
# only those of the test binaries; they are printed after the tests.
reports="$root/$build_dir/sanitizer-reports"
rm -rf "$reports"; mkdir -p "$reports"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=0:log_path=$reports/asan"
export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$root/scripts/ubsan.supp:log_path=$reports/ubsan"
export TSAN_OPTIONS="halt_on_error=0:exitcode=66:second_deadlock_stack=1:history_size=4:suppressions=$root/scripts/tsan.supp:log_path=$reports/tsan"
# The RADOS store's tests (tests/storage/rados) need a Ceph cluster: the address mode runs
# one for its tests as scripts/test.sh does (MGREG_TEST_CEPH_CONF=FILE uses an existing
# one). The thread mode does not: librados is uninstrumented and completes operations on
# its own threads, as gRPC does, so those tests skip there with their message.
if [ "$mode" != thread ] && [ "$mode" != tsan ] && [ -z "${MGREG_TEST_CEPH_CONF:-}" ] &&
   printf '%s\n' "${tests[@]}" | grep -q rados; then
  if command -v ceph-mon >/dev/null 2>&1; then
    ceph_dir="$(mktemp -d "${TMPDIR:-/tmp}/mgreg-ceph.XXXXXX")"
    trap 'scripts/ceph-dev.sh stop "$ceph_dir"' EXIT
    scripts/ceph-dev.sh start "$ceph_dir"
    export MGREG_TEST_CEPH_CONF="$ceph_dir/ceph.conf"
  else
    echo "sanitize $mode: ceph-mon not installed: the RADOS store tests will be SKIPPED" >&2
  fi
elif [ -z "${MGREG_TEST_CEPH_CONF:-}" ] && printf '%s\n' "${tests[@]}" | grep -q rados; then
  echo "sanitize $mode: no Ceph cluster under TSan: the RADOS store tests will be SKIPPED"
fi
log="$build_dir/sanitize-tests.log"
set +e
ctest --test-dir "$build_dir" --output-on-failure -j 2 --timeout 1200 -R "$regex" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
end=$(date +%s)
total=$(sed -n 's/.* tests failed out of \([0-9]*\)$/\1/p' "$log" | tail -1)
failed=$(sed -n 's/.* tests passed, \([0-9]*\) tests failed out of .*/\1/p' "$log" | tail -1)
# A report without a SUMMARY line (cut short) still counts as one.
nreports=0
for f in "$reports"/*; do
  [ -f "$f" ] || continue
  n=$(grep -cE '^SUMMARY: ' "$f" || true)
  nreports=$((nreports + (n > 0 ? n : 1)))
  echo "=== sanitizer report $f"; cat "$f"
done
if [ "$nreports" -gt 0 ] && [ "$rc" -eq 0 ]; then
  echo "sanitize $mode: $nreports reports although every test passed (a process whose exit"
  echo "status no test checks); failing the run"
  rc=1
fi
echo "sanitize $mode: build $((built - start))s, tests $((end - built))s," \
  "$(( ${total:-0} - ${failed:-0} )) passed, ${failed:-0} failed, $nreports sanitizer reports, exit $rc"
echo "ci-result: passed=$(( ${total:-0} - ${failed:-0} )) failed=${failed:-0} findings=$nreports"
exit $rc
