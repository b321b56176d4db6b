#!/usr/bin/env bash
# Builds mgreg with sanitizers and runs tests under them (-O1 -g, GCC by default; set
# CXX=clang++ for clang).
#   scripts/sanitize.sh address   ASan + UBSan into build-asan: the unit and server tests
#                                 (tests/common, proto, metagraph, storage, server, fuzz
#                                 regressions). The end-to-end and packaging tests
#                                 (tests/e2e) are left out: they start real processes and
#                                 take several minutes even uninstrumented.
#   scripts/sanitize.sh thread    TSan into build-tsan: the concurrency tests, i.e. every
#                                 test of tests/server and tests/storage.
# Environment: MGREG_SANITIZE_TESTS='regex' runs only the matching tests of that set;
# MGREG_SANITIZE_JOBS build parallelism (default 2); MGREG_SOURCE_DIR (default: this
# checkout) to build another source tree, e.g. a snapshot taken mid-change.
# Every sanitizer report fails its test (halt_on_error); third-party false positives are
# suppressed narrowly in scripts/tsan.supp / scripts/ubsan.supp / scripts/lsan.supp.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mode="${1:-address}"
source_dir="${MGREG_SOURCE_DIR:-.}"
jobs="${MGREG_SANITIZE_JOBS:-2}"

# Test names of the given test folders, as declared by mgreg_add_test / the fuzz list.
tests_of() {
  local d
  for d in "$@"; do
    [ -f "$source_dir/tests/$d/CMakeLists.txt" ] || continue
    sed -n 's/^mgreg_add_test(\([A-Za-z0-9_]*\).*/\1/p' "$source_dir/tests/$d/CMakeLists.txt"
  done
}

case "$mode" in
  address|address,undefined|asan)
    build_dir=build-asan
    flags="address,undefined"
    mapfile -t tests < <(tests_of common proto metagraph storage server)
    fuzz_regressions=1
    ;;
  thread|tsan)
    build_dir=build-tsan
    flags="thread"
    mapfile -t tests < <(tests_of server storage)
    fuzz_regressions=0
    ;;
  *) echo "usage: $0 [address|thread]" >&2; exit 2 ;;
esac

if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  generator=()
  if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
  cmake -S "$source_dir" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMGREG_SANITIZE="$flags" -DMGREG_BUILD_TESTS=ON -DMGREG_BUILD_BENCH=OFF >/dev/null
fi
targets=("${tests[@]}" mgreg-server mgreg)
regex="^($(IFS='|'; echo "${tests[*]}"))\$"
if [ "$fuzz_regressions" = 1 ] && [ -d "$source_dir/tests/fuzz_regressions" ]; then
  for d in "$source_dir"/tests/fuzz_regressions/*/; do
    t=$(basename "$d")
    targets+=("${t}_regression")
  done
  regex="^(($(IFS='|'; echo "${tests[*]}"))|fuzz_regression_.*)\$"
fi
if [ -n "${MGREG_SANITIZE_TESTS:-}" ]; then regex="$MGREG_SANITIZE_TESTS"; fi
start=$(date +%s)
cmake --build "$build_dir" -j "$jobs" --target "${targets[@]}"
built=$(date +%s)

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=0"
export LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$root/scripts/ubsan.supp"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:history_size=4:suppressions=$root/scripts/tsan.supp"
rc=0
ctest --test-dir "$build_dir" --output-on-failure -j 2 --timeout 1200 -R "$regex" || rc=$?
end=$(date +%s)
echo "sanitize $mode: build $((built - start))s, tests $((end - built))s, exit $rc"
exit $rc
