#!/usr/bin/env bash
# Builds the project's Dockerfile with podman and tests the image as an operator would
# (docs/operations.md "Docker and deploy/"): a Debian 12 base image made with debootstrap from the
# mirror apt on this machine uses (no registry is reachable to pull one), the image
# built on it, the container run with --network=host on 127.0.0.1 (ports picked by the
# server), a real TensorFlow checkpoint pushed, read back with `latest` and restored
# byte for byte with the host's mgreg CLI, a graceful stop, and a restart on the same
# data volume. Every container and volume it makes is removed by name at the end.
#
# Where the machine does not run containers (not root, or podman refuses), it prints
# "docker-test: SKIPPED: " and podman's exact refusal, and exits 0.
#
# Cached between runs on one machine, under $MGREG_DOCKER_CACHE (default
# ~/.cache/mgreg-docker): the base image (rebuilt when apt's sources change or after
# MGREG_DOCKER_BASE_MAX_DAYS, default 30), podman's layer cache (the build stage is
# tagged so it stays cached), the apt packages and lists, and a ccache mounted into the
# build. MGREG_DOCKER_IMAGE names the image (default localhost/mgreg:docker-test).
# The CLI is $MGREG_BUILD_DIR/client/mgreg (default build/) when built, else the image's.
# Test data: $MGREG_TESTDATA (default ../shared/testdata/tf); without it the push,
# latest and restore checks are skipped with a message.
# Prints `ci-result: passed=P failed=F findings=0` last; exits 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
src_dir=$(pwd)
run_start=$(date +%s)

passed=0
failed=0
times=()
phase_start=$run_start
phase_done() {  # NAME: records the time since the previous phase ended
  local now
  now=$(date +%s)
  times+=("$1 $((now - phase_start))s")
  phase_start=$now
}
ok() {
  passed=$((passed + 1))
  echo "docker-test: ok: $*"
}
bad() {
  failed=$((failed + 1))
  echo "docker-test: FAILED: $*"
}
finish() {
  echo "docker-test: times: ${times[*]}; total $(($(date +%s) - run_start))s"
  echo "docker-test: $passed passed, $failed failed"
  echo "ci-result: passed=$passed failed=$failed findings=0"
  [ "$failed" -eq 0 ] && exit 0
  exit 1
}
die() {  # a step the checks after it depend on failed
  bad "$*"
  finish
}
skip() {
  echo "docker-test: SKIPPED: $*"
  echo "ci-result: passed=0 failed=0 findings=0"
  exit 0
}

scripts/install-deps.sh container
if [ "$(id -u)" -ne 0 ]; then
  skip "needs root: debootstrap and rootful podman (user $(id -un) is not root)"
fi
export CONTAINERS_CONF="$src_dir/scripts/containers.conf"
cache="${MGREG_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mgreg-docker}"
image="${MGREG_DOCKER_IMAGE:-localhost/mgreg:docker-test}"
build_image="$image-build"
mkdir -p "$cache/debootstrap" "$cache/apt/archives/partial" "$cache/apt/lists/partial" \
  "$cache/ccache"
tmp=$(mktemp -d /var/tmp/mgreg-docker-test.XXXXXX)
name="mgreg-docker-test-$$"
volume="mgreg-docker-test-data-$$"
rootfs=""
cleanup() {
  if podman container exists "$name" 2>/dev/null; then
    podman rm --force --time 10 "$name" >/dev/null || echo "docker-test: could not remove container $name"
  fi
  if podman volume exists "$volume" 2>/dev/null; then
    podman volume rm --force "$volume" >/dev/null || echo "docker-test: could not remove volume $volume"
  fi
  if [ -n "$rootfs" ]; then rm -rf --one-file-system "$rootfs"; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

if ! podman info >/dev/null 2>"$tmp/err"; then
  skip "podman cannot run here: $(cat "$tmp/err")"
fi
phase_done deps

# --- The base image: Debian 12 minbase from apt's own bookworm sources. --------------
# The image's sources are this machine's bookworm, bookworm-updates and
# bookworm-security entries (main), read from apt at run time.
sources=$(apt-get indextargets --no-release-info --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' \
            'Identifier: Packages' |
          awk '$3 == "main" && $2 ~ /^bookworm(-updates|-security)?$/ {print "deb " $1 " " $2 " main"}' |
          sort -u)
mirror=$(awk '$3 == "bookworm" {print $2; exit}' <<<"$sources")
if [ -z "$mirror" ]; then
  die "apt on this machine has no Debian 'bookworm' source with component main (apt-get indextargets); add one under /etc/apt/sources.list.d/ and run apt-get update"
fi
# The recipe's version is part of the key: change it when the steps below change.
base_key=$(printf 'base-v1\n%s\n' "$sources" | sha256sum | cut -c1-12)
base="localhost/mgreg-debian12-base:$base_key"
max_days="${MGREG_DOCKER_BASE_MAX_DAYS:-30}"
base_age_days=""
if podman image exists "$base"; then
  created=$(podman image inspect --format '{{.Created.Unix}}' "$base")
  base_age_days=$(( ($(date +%s) - created) / 86400 ))
fi
if [ -n "$base_age_days" ] && [ "$base_age_days" -lt "$max_days" ]; then
  echo "docker-test: base image $base ($base_age_days days old, reused)"
else
  echo "docker-test: making base image $base: debootstrap bookworm from $mirror"
  rootfs=$(mktemp -d /var/tmp/mgreg-rootfs.XXXXXX)
  if ! debootstrap --variant=minbase --cache-dir="$cache/debootstrap" bookworm "$rootfs" \
       "$mirror" >"$tmp/debootstrap.log" 2>&1; then
    tail -n 30 "$tmp/debootstrap.log"
    die "debootstrap bookworm from $mirror failed (log above)"
  fi
  printf '%s\n' "$sources" >"$rootfs/etc/apt/sources.list"
  # Slim, as Debian's -slim images are: no docs (copyright notices kept), manuals or
  # translations now or from packages installed later; no package lists or .debs.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/mgreg-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
  echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/mgreg-no-languages"
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/lib/apt/lists/*
  old_base=$(podman image inspect --format '{{.Id}}' "$base" 2>/dev/null || true)
  if ! tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$base" \
       >/dev/null 2>"$tmp/err"; then
    skip "podman cannot import an image here: $(cat "$tmp/err")"
  fi
  rm -rf --one-file-system "$rootfs"
  rootfs=""
  if [ -n "$old_base" ] && ! podman rmi "$old_base" >/dev/null 2>&1; then
    echo "docker-test: note: the replaced base image $old_base is still used by older images"
  fi
fi
if ! podman run --rm --network=host "$base" true 2>"$tmp/err"; then
  skip "podman cannot run a container here: $(cat "$tmp/err")"
fi
phase_done base

# --- The image: the project's Dockerfile on that base. ------------------------------
build_args=(
  --network=host --pull=never --layers
  --build-arg "BASE_IMAGE=$base" --build-arg "RUNTIME_BASE_IMAGE=$base"
  --build-arg MGREG_CCACHE=1
  -v "$cache/apt/archives:/var/cache/apt/archives"
  -v "$cache/apt/lists:/var/lib/apt/lists"
  -v "$cache/ccache:/var/cache/mgreg-ccache"
)
old_ids=$(podman image inspect --format '{{.Id}}' "$image" "$build_image" 2>/dev/null || true)
echo "docker-test: building $image (log $cache/build.log)"
# The build stage is tagged too, so that replacing it removes the old one and it is
# never an untagged leftover that only a prune would find.
if ! { podman build "${build_args[@]}" --target build -t "$build_image" . &&
       podman build "${build_args[@]}" -t "$image" .; } >"$cache/build.log" 2>&1; then
  tail -n 40 "$cache/build.log"
  die "podman build failed (log above, whole log in $cache/build.log)"
fi
steps=$(grep -c 'STEP [0-9]*/[0-9]*: ' "$cache/build.log" || true)
cached=$(grep -c 'Using cache' "$cache/build.log" || true)
echo "docker-test: built $image: $cached of $steps steps of the two builds (build stage, image) from the layer cache"
new_ids=$(podman image inspect --format '{{.Id}}' "$image" "$build_image")
for id in $old_ids; do
  if [[ " ${new_ids//$'\n'/ } " != *" $id "* ]]; then
    podman rmi "$id" >/dev/null 2>&1 || echo "docker-test: note: old image $id still in use"
  fi
done
phase_done build

config=$(podman image inspect --format '{{.Config.User}} {{json .Config.Entrypoint}} {{json .Config.Volumes}}' "$image")
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "docker-test: image $image: $((size / 1000000)) MB; user, entrypoint, volumes: $config"
if [[ "$config" == '10001:10001 ["mgreg-server"] {"/var/lib/mgreg":{}}' ]]; then
  ok "the image runs mgreg-server as user 10001 with its data on the volume /var/lib/mgreg"
else
  bad "the image's user, entrypoint and volumes are '$config', not 10001:10001 [\"mgreg-server\"] {\"/var/lib/mgreg\":{}}"
fi

# --- Run it. -------------------------------------------------------------------------
addr=""
metrics=""
start_server() {  # starts the container on the data volume; sets addr and metrics
  podman run -d --name "$name" --network=host -v "$volume:/var/lib/mgreg" "$image" \
    --data-dir=/var/lib/mgreg --listen=127.0.0.1:0 --metrics-listen=127.0.0.1:0 >/dev/null ||
    die "podman run $image failed"
  local deadline=$(($(date +%s) + 60)) ready=""
  while [ -z "$ready" ]; do
    ready=$(podman logs "$name" 2>/dev/null | grep -m1 '^mgreg-server listening on ' || true)
    if [ -n "$ready" ]; then break; fi
    if [ "$(podman inspect --format '{{.State.Running}}' "$name")" != true ] ||
       [ "$(date +%s)" -gt "$deadline" ]; then
      podman logs "$name" 2>&1 | tail -n 20
      die "the container did not print its ready line (logs above)"
    fi
    sleep 0.2
  done
  echo "docker-test: $ready"
  addr=$(sed -n 's/^mgreg-server listening on \([^ ]*\) .*/\1/p' <<<"$ready")
  metrics=$(sed -n 's|.*metrics on http://\([^/]*\)/metrics.*|\1|p' <<<"$ready")
}
stop_server() {  # SIGTERM through podman stop: a graceful drain, exit status 0
  podman stop --time 30 "$name" >/dev/null || die "podman stop $name failed"
  local code
  code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
  if [ "$code" = 0 ] && podman logs "$name" 2>&1 | grep -q 'mgreg-server stopped'; then
    ok "podman stop drains and stops the server (exit status 0)"
  else
    podman logs "$name" 2>&1 | tail -n 20
    bad "the server did not stop cleanly on podman stop (exit status $code, logs above)"
  fi
  podman rm "$name" >/dev/null
}

cli_bin="${MGREG_BUILD_DIR:-build}/client/mgreg"
testdata=$(realpath -m "${MGREG_TESTDATA:-../shared/testdata/tf}")
if [ -x "$cli_bin" ]; then
  cli=("$cli_bin")
  echo "docker-test: the host's CLI $cli_bin talks to the container"
else
  cli=(podman run --rm --network=host --user 0:0 --entrypoint mgreg
       -v "$testdata:$testdata:ro" -v "$tmp:$tmp" "$image")
  echo "docker-test: no $cli_bin built: the image's own CLI talks to the container"
fi
mgreg() { "${cli[@]}" --server "$addr" "$@"; }

podman volume create "$volume" >/dev/null || die "podman volume create $volume failed"
start_server
if [ "$(podman exec "$name" id -u)" = 10001 ]; then
  ok "the server runs as uid 10001"
else
  bad "the server runs as uid $(podman exec "$name" id -u), not 10001"
fi
if [ "$(podman exec "$name" mgreg --server "$addr" admin health)" = SERVING ]; then
  ok "the image's mgreg admin health (its HEALTHCHECK) says SERVING"
else
  bad "the image's mgreg admin health does not say SERVING"
fi
if timeout 10 bash -c 'exec 3<>"/dev/tcp/${1%:*}/${1##*:}"
                        printf "GET /metrics HTTP/1.0\r\n\r\n" >&3
                        cat <&3' _ "$metrics" >"$tmp/metrics" 2>&1 &&
   head -n 1 "$tmp/metrics" | grep -q ' 200 ' && grep -q '^# TYPE ' "$tmp/metrics"; then
  ok "GET http://$metrics/metrics answers Prometheus text"
else
  bad "GET http://$metrics/metrics: $(head -c 300 "$tmp/metrics")"
fi

model=docker-test/tfx
prefix="$testdata/tfx/tfx/components/testdata/trainer/current/Format-Serving/model.ckpt-1000"
if [ ! -f "$prefix.index" ]; then
  echo "docker-test: push, latest and restore skipped: no checkpoint $prefix.index (set MGREG_TESTDATA)"
  if mgreg latest "$model" >/dev/null 2>"$tmp/err"; then
    bad "latest of a model never pushed succeeded"
  elif grep -q NOT_FOUND "$tmp/err"; then
    ok "latest of a model never pushed is NOT_FOUND"
  else
    bad "latest of a model never pushed: $(cat "$tmp/err")"
  fi
else
  if mgreg push "$model" "$prefix"; then
    ok "push $model $prefix"
  else
    bad "push $model $prefix"
  fi
  if mgreg latest "$model" --json | grep -q '"step": "1000"'; then
    ok "latest $model is step 1000"
  else
    bad "latest $model is not step 1000"
  fi
  if podman exec "$name" mgreg --server "$addr" latest "$model" | grep -q '^step  *1000$'; then
    ok "the image's CLI sees step 1000 too"
  else
    bad "the image's CLI does not see step 1000"
  fi
  restored="$tmp/restore"
  if mgreg restore "$model" "$restored" &&
     cmp "$prefix.index" "$restored/model.ckpt-1000.index" &&
     cmp "$prefix.data-00000-of-00001" "$restored/model.ckpt-1000.data-00000-of-00001" &&
     cmp "$prefix.meta" "$restored/model.ckpt-1000.meta" &&
     grep -qx 'model_checkpoint_path: "model.ckpt-1000"' "$restored/checkpoint"; then
    ok "restore writes the pushed files byte for byte and a checkpoint state file"
  else
    bad "restore did not give back the pushed checkpoint"
  fi
fi
stop_server
if [ -f "$prefix.index" ]; then
  start_server
  if mgreg latest "$model" --json | grep -q '"step": "1000"'; then
    ok "a new container on the same volume still serves step 1000"
  else
    bad "a new container on the same volume lost step 1000"
  fi
  stop_server
fi
podman volume rm "$volume" >/dev/null
phase_done run
finish
