#!/usr/bin/env bash
# Builds the benchmarks (bench/) into build-bench (or $MGREG_BENCH_BUILD_DIR) and runs
# every one that is built, printing their RESULT lines (../shared/PERF.md) at the end.
# Then scripts/bench_report.py writes bench/RESULTS-latest.md (every scenario's figures,
# floor, date, tree and load) and the README's performance table from them; scenarios
# not run keep their earlier rows. MGREG_BENCH_REPORT=0 skips that.
# Each benchmark starts its own servers, pinned to CPU 0, and its load on CPU 1; large
# files go under <build dir>/tmp and are deleted when each benchmark ends.
#   scripts/bench.sh [bench_name ...]     (default: all of them)
# Environment: MGREG_BENCH_JOBS (build parallelism, default 2); MGREG_BENCH_SOURCE_DIR
# (default: this checkout) to measure another source tree, e.g. a snapshot taken while
# the checkout is mid-change.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${MGREG_BENCH_BUILD_DIR:-build-bench}"
source_dir="${MGREG_BENCH_SOURCE_DIR:-.}"
jobs="${MGREG_BENCH_JOBS:-2}"

# The same ccache as every other tree (scripts/ccache-env.sh), so a bench tree of sources
# already built elsewhere compiles from cache.
source scripts/ccache-env.sh
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S "$source_dir" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "${mgreg_ccache_args[@]}" -DMGREG_BUILD_TESTS=OFF >/dev/null
fi
# The known benchmarks first, then whatever other *_bench targets bench/ defines.
known=(push_bench multiwriter_bench pull_bench latest_bench memory_bench storage_bench export_bench
       export_warm_bench watch_bench)
bench_cmake="$source_dir/bench/CMakeLists.txt"
defined=$(sed -n 's/^add_executable(\([A-Za-z0-9_]*_bench\)\b.*/\1/p' "$bench_cmake")
benches=()
if [ "$#" -gt 0 ]; then
  benches=("$@")
else
  for b in "${known[@]}" $defined; do
    if grep -q "add_executable($b\b" "$bench_cmake" &&
       [[ ! " ${benches[*]-} " =~ " $b " ]]; then
      benches+=("$b")
    fi
  done
fi
cmake --build "$build_dir" -j "$jobs" --target mgreg-server "${benches[@]}"

df -h "$build_dir" | tail -1
results=$(mktemp)
trap 'rm -f "$results"' EXIT
status=0
for b in "${benches[@]}"; do
  echo "=== $b load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$results"
  if ! "$build_dir/bench/$b" 2>"$build_dir/$b.stderr" | tee -a "$results"; then
    echo "$b failed; its stderr is in $build_dir/$b.stderr" | tee -a "$results"
    status=1
  fi
done
echo "=== RESULT lines"
grep -E '^RESULT |failed;' "$results" || true
if [ "${MGREG_BENCH_REPORT:-1}" != 0 ]; then
  python3 scripts/bench_report.py "$results" --readme README.md \
    --latest bench/RESULTS-latest.md || status=1
fi
exit $status
