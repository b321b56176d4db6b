#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang, -fsanitize=fuzzer,address,undefined) and runs
# each for a bounded time. They are built in build-asan, the clang ASan + UBSan tree of
# scripts/sanitize.sh address (configured by it if missing), so CI's asan and fuzz stages
# share one build; MGREG_FUZZ_BUILD_DIR=DIR builds a fuzz-only tree there instead.
#   scripts/fuzz.sh [seconds-per-target]          (default 60)
# Environment: MGREG_FUZZ_TARGETS="a b" runs only those targets; MGREG_FUZZ_JOBS build
# parallelism (default 2); MGREG_TESTDATA (default ../shared/testdata/tf) for seeds.
# Seeds: the relevant files of the test data (copied into a temporary corpus, never
# committed), tests/fuzz/regressions/<target>/ and a few generated here. The run is
# deterministic for a given corpus (-seed=1). Exits 1 if any target crashed, printing the
# reproducer path; crash inputs stay in <build dir>/artifacts/<target>/ (keep them under
# tests/fuzz/regressions/<target>/ once fixed). Prints execs per target at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
build_dir="${MGREG_FUZZ_BUILD_DIR:-build-asan}"
jobs="${MGREG_FUZZ_JOBS:-2}"
testdata="${MGREG_TESTDATA:-$(cd .. && pwd)/shared/testdata/tf}"
all_targets=(export_fuzzer metagraph_text_fuzzer bundle_index_fuzzer checkpoint_state_fuzzer
             checkpoint_name_fuzzer upload_fuzzer)
read -r -a targets <<<"${MGREG_FUZZ_TARGETS:-${all_targets[*]}}"

scripts/install-deps.sh hardening >/dev/null
source scripts/ccache-env.sh
if [ "$build_dir" = build-asan ]; then
  MGREG_SANITIZE_CONFIGURE_ONLY=1 scripts/sanitize.sh address
elif [ ! -f "$build_dir/CMakeCache.txt" ]; then
  generator=()
  if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
  cmake -S . -B "$build_dir" "${generator[@]}" "${mgreg_ccache_args[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DMGREG_FUZZ=ON \
    -DMGREG_BUILD_TESTS=OFF -DMGREG_BUILD_BENCH=OFF >/dev/null
fi
if ! grep -q '^MGREG_FUZZ:BOOL=ON' "$build_dir/CMakeCache.txt"; then
  echo "fuzz: $build_dir is not a clang build with MGREG_FUZZ=ON (delete it, or set" \
       "MGREG_FUZZ_BUILD_DIR to another folder)" >&2
  exit 2
fi
cmake --build "$build_dir" -j "$jobs" --target "${targets[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# seed_files TARGET: prints the test-data files that seed TARGET.
seed_files() {
  [ -d "$testdata" ] || return 0
  case "$1" in
    export_fuzzer|metagraph_text_fuzzer)
      find "$testdata" -type f \( -name '*.meta' -o -name 'saved_model.pb' \) ;;
    bundle_index_fuzzer)
      find "$testdata" -type f \( -name '*.index' -o -name 'export-00000-of-00001' \) ;;
    checkpoint_state_fuzzer) find "$testdata" -type f -name checkpoint ;;
    checkpoint_name_fuzzer|upload_fuzzer) ;;
  esac
}

# generate_seeds TARGET DIR: small seeds written here.
generate_seeds() {
  local t="$1" d="$2"
  case "$t" in
    export_fuzzer)
      # The export fuzzer reads two option bytes before the stored graph: give each test
      # graph a few option sets (clear_devices, scope, collection_list, strip, savers).
      local i=0
      while IFS= read -r f; do
        for opts in '\x00\x00' '\x11\x01' '\x20\x0c' '\x16\x03' '\x3f\x07' '\x08\x00'; do
          { printf "$opts"; cat "$f"; } >"$d/gen-$i-${opts//\\x/}"
        done
        i=$((i + 1))
      done < <(seed_files export_fuzzer)
      printf '\x11\x00meta_info_def { tensorflow_version: "1.15" } graph_def { node { name: "a/b" op: "Const" device: "/cpu:0" } }' >"$d/gen-text"
      ;;
    metagraph_text_fuzzer)
      printf 'meta_info_def { tensorflow_version: "1.15" stripped_op_list { op { name: "Const" } } }\ngraph_def { node { name: "a/b" op: "Const" input: "^c" device: "/cpu:0" attr { key: "dtype" value { type: DT_FLOAT } } } }\ncollection_def { key: "variables" value { bytes_list { value: "x" } } }\nsaver_def { filename_tensor_name: "save/Const:0" version: V2 }\n' >"$d/gen-text"
      ;;
    checkpoint_state_fuzzer)
      printf 'model_checkpoint_path: "ckpt-19"\nall_model_checkpoint_paths: "ckpt-18"\nall_model_checkpoint_paths: "ckpt-19"\nall_model_checkpoint_timestamps: 1673735799.685766\nall_model_checkpoint_timestamps: 1e+16\nlast_preserved_timestamp: 1673735700.5\n' >"$d/gen-full"
      printf 'model_checkpoint_path: "/a/\\303\\251\\n"\n# comment\nmodel_checkpoint_path: "b"' >"$d/gen-escapes"
      ;;
    checkpoint_name_fuzzer)
      local n=0
      for s in "dir/model.ckpt-1000" "ckpt-19.index" "/model.ckpt-007.meta" \
               "x/model.ckpt-1.data-00001-of-00002" "data-00001-of-00002" "team-a/resnet" \
               "model" "-5" "a-9223372036854775808"; do
        printf '%s' "$s" >"$d/gen-$n"; n=$((n + 1))
      done
      ;;
    upload_fuzzer) ;;  # tests/fuzz/regressions/upload_fuzzer/ holds the generated seeds
  esac
}

status=0
summary=()
crashed=0
total_execs=0
for t in "${targets[@]}"; do
  corpus="$work/$t"
  artifacts="$build_dir/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  i=0
  while IFS= read -r f; do cp "$f" "$corpus/td-$i-$(basename "$f")"; i=$((i + 1)); done \
    < <(seed_files "$t")
  generate_seeds "$t" "$corpus"
  if [ -d "tests/fuzz/regressions/$t" ]; then cp tests/fuzz/regressions/"$t"/* "$corpus"/ 2>/dev/null || true; fi
  log="$build_dir/$t.log"
  echo "=== $t: ${secs}s, $(ls "$corpus" | wc -l) seeds"
  rc=0
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}" \
  "$build_dir/fuzz/$t" -max_total_time="$secs" -seed=1 -timeout=25 -rss_limit_mb=2560 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" \
    >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  execs="${execs:-0}"
  if [ "$rc" -ne 0 ]; then
    status=1
    repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "$t CRASHED (exit $rc) after $execs execs; reproducer: ${repro:-none written}; log: $log"
    grep -m 20 -E 'ERROR|SUMMARY|FUZZ_CHECK|runtime error|#[0-9]+ 0x' "$log" | head -20 || true
    summary+=("$t execs=$execs CRASH ${repro:-}")
    crashed=$((crashed + 1))
  else
    echo "$t ok: $execs execs"
    summary+=("$t execs=$execs ok")
  fi
  total_execs=$((total_execs + execs))
done
echo "=== fuzz summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
echo "fuzz: ${#targets[@]} targets, $(( ${#targets[@]} - crashed )) passed, $crashed crashed," \
  "$total_execs execs in all"
echo "ci-result: passed=$(( ${#targets[@]} - crashed )) failed=$crashed findings=$crashed"
exit $status
