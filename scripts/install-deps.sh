#!/usr/bin/env bash
# The one list of system packages mgreg needs (Debian 12). Installs only what is missing.
# Usage: scripts/install-deps.sh [build|test|all|runtime|hardening|rados|format|container|bench]
#   (default: all)
#   runtime: only the shared libraries mgreg-server and mgreg need (the Docker image's
#   runtime stage).
#   container: what scripts/docker-test.sh needs to build and run the image.
#   bench: build, plus what finding where a benchmark's time goes takes (perf, strace;
#   bench/RESULTS.md) and h2load for latest_bench.
set -euo pipefail

build_pkgs=(
  build-essential cmake ninja-build pkg-config ca-certificates ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev libabsl-dev libssl-dev
  libleveldb-dev libsnappy-dev libisal-dev
  libcivetweb-dev civetweb
)
runtime_pkgs=(
  ca-certificates libgrpc++1.51 libgrpc29 libprotobuf32 librocksdb7.8 libabsl20220623
  libssl3 libleveldb1d libsnappy1v5 libisal2 libcivetweb1
)
test_pkgs=(
  openssl
  libgtest-dev libgmock-dev libbenchmark-dev
  prometheus python3 python3-prometheus-client yamllint nghttp2-client
  # the Python client's tests (python/, run with /usr/bin/python3)
  python3-grpcio python3-protobuf python3-pytest python3-venv python3-pip
  # the web pages' real-browser test (tests/server/web/browser_test.py)
  chromium chromium-driver python3-selenium
)
# The RADOS store (MGREG_WITH_RADOS) and its tests' single-node cluster (scripts/ceph-dev.sh):
# librados headers (librados.hpp is only in libradospp-dev), a monitor, an OSD and the
# ceph/rados tools. Part of test and all, so the README's test command runs the RADOS tests.
rados_pkgs=(
  librados-dev libradospp-dev ceph-mon ceph-osd ceph-common
)
# scripts/fuzz.sh and scripts/sanitize.sh (the asan, tsan and fuzz stages of .ci/run): clang with
# libFuzzer and the sanitizer runtimes (libclang-rt-14-dev); GCC's ASan/UBSan/TSan
# runtimes come with build-essential.
hardening_pkgs=(
  clang clang-14 libclang-rt-14-dev
)
# scripts/check-format.sh (the format stage of .ci/run): Debian 12's clang-format, version 14.
format_pkgs=(
  clang-format-14
)
# scripts/docker-test.sh: podman with runc (crun refuses this machine's hybrid cgroups),
# debootstrap for the Debian 12 base image (no registry is reachable to pull one).
container_pkgs=(
  podman runc debootstrap debian-archive-keyring
)

# Profiling the benchmarks (bench/RESULTS.md: perf record -g, strace -c -f).
bench_pkgs=(
  linux-perf strace nghttp2-client
)

mode="${1:-all}"
case "$mode" in
  build) pkgs=("${build_pkgs[@]}") ;;
  test|all) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}" "${rados_pkgs[@]}") ;;
  rados) pkgs=("${rados_pkgs[@]}") ;;
  format) pkgs=("${format_pkgs[@]}") ;;
  runtime) pkgs=("${runtime_pkgs[@]}") ;;
  hardening) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}" "${hardening_pkgs[@]}") ;;
  container) pkgs=("${container_pkgs[@]}") ;;
  bench) pkgs=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|all|runtime|hardening|rados|format|container|bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
if [ "${MGREG_APT_CLEAN:-0}" = 1 ]; then
  # A package cache that an image build mounts in (scripts/docker-test.sh) is not part of
  # the image: keep it for the next build.
  if mountpoint -q /var/cache/apt/archives 2>/dev/null; then
    $SUDO rm -f /var/cache/apt/*.bin
  else
    $SUDO apt-get clean
  fi
  if ! mountpoint -q /var/lib/apt/lists 2>/dev/null; then $SUDO rm -rf /var/lib/apt/lists/*; fi
fi
