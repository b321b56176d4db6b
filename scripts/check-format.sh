#!/usr/bin/env bash
# Checks that the project's own C++ files (every tracked *.cc and *.h; the generated proto
# code is not tracked) are formatted as .clang-format says, with Debian 12's clang-format 14
# (another version formats some constructs differently).
#
# Usage: scripts/check-format.sh [--fix] [--report-only] [--changed [REF]] [FILE...]
#   (no option)    check every file: list each file that differs, exit 1 if any does
#   --fix          reformat the files in place instead (the one reformat commit)
#   --report-only  list the files that differ but exit 0 (CI's format stage until the tree
#                  has been reformatted once)
#   --changed REF  only the files changed since REF (default main), committed or not
#   FILE...        only these files
# Prints `ci-result: passed=P failed=F findings=0` (.ci/run's stage figures): P files
# formatted, F files that differ (with --report-only they count as findings instead).
set -euo pipefail
cd "$(dirname "$0")/.."

fix=0
report_only=0
changed=""
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --fix) fix=1 ;;
    --report-only) report_only=1 ;;
    --changed)
      if [ $# -gt 1 ] && [[ "$2" != --* ]]; then changed="$2"; shift; else changed=main; fi ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --*) echo "check-format: unknown option $1 (options: --fix, --report-only," \
              "--changed [REF], FILE...)" >&2; exit 2 ;;
    *) files+=("$1") ;;
  esac
  shift
done
if [ "$fix" = 1 ] && [ "$report_only" = 1 ]; then
  echo "check-format: --fix and --report-only exclude each other" >&2
  exit 2
fi

scripts/install-deps.sh format >/dev/null
clang_format="${CLANG_FORMAT:-clang-format-14}"
if ! "$clang_format" --version | grep -q 'version 14\.'; then
  echo "check-format: $clang_format is not clang-format 14 ($("$clang_format" --version));" \
       "set CLANG_FORMAT to Debian 12's clang-format-14" >&2
  exit 2
fi

is_cxx='\.(cc|h)$'
given=""  # the selection, repeated in the hint to fix it
if [ "${#files[@]}" -ne 0 ]; then given=" ${files[*]}"; elif [ -n "$changed" ]; then given=" --changed $changed"; fi
if [ "${#files[@]}" -eq 0 ]; then
  if [ -n "$changed" ]; then
    if ! git rev-parse -q --verify "$changed^{commit}" >/dev/null; then
      echo "check-format: --changed $changed: no such commit or branch" >&2
      exit 2
    fi
    # Committed since the merge base, and staged or unstaged in the work tree; not deleted.
    mapfile -t files < <({ git diff --name-only --diff-filter=d "$(git merge-base "$changed" HEAD)" HEAD
                           git diff --name-only --diff-filter=d HEAD; } |
                         sort -u | grep -E "$is_cxx" || true)
  else
    mapfile -t files < <(git ls-files | grep -E "$is_cxx")
  fi
fi
for f in "${files[@]}"; do
  if [ ! -f "$f" ]; then echo "check-format: $f: no such file" >&2; exit 2; fi
done
if [ "${#files[@]}" -eq 0 ]; then
  echo "check-format: no C++ files to check"
  echo "ci-result: passed=0 failed=0 findings=0"
  exit 0
fi

if [ "$fix" = 1 ]; then
  "$clang_format" -i --style=file "${files[@]}"
  echo "check-format: formatted ${#files[@]} files with $clang_format"
  exit 0
fi

bad=()
for f in "${files[@]}"; do
  if ! "$clang_format" --dry-run -Werror --style=file "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done
ok=$(( ${#files[@]} - ${#bad[@]} ))
if [ "${#bad[@]}" -eq 0 ]; then
  echo "check-format: all ${#files[@]} files formatted"
  echo "ci-result: passed=$ok failed=0 findings=0"
  exit 0
fi
printf 'check-format: not formatted: %s\n' "${bad[@]}"
selection="$given"
echo "check-format: ${#bad[@]} of ${#files[@]} files differ from .clang-format;" \
     "see one with: $clang_format --dry-run --style=file FILE; fix them with: $0 --fix$selection"
if [ "$report_only" = 1 ]; then
  echo "ci-result: passed=$ok failed=0 findings=${#bad[@]}"
  exit 0
fi
echo "ci-result: passed=$ok failed=${#bad[@]} findings=0"
exit 1
