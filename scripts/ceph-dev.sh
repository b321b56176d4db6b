#!/usr/bin/env bash
# A throwaway single-node Ceph cluster for development and tests (../shared/design/RADOS_STORE.md §4).
#
#   scripts/ceph-dev.sh start DIR   one monitor + one OSD on 127.0.0.1, everything under DIR
#                                   (config DIR/ceph.conf, data, logs, admin sockets, PIDs);
#                                   creates pool `mgreg` (or $CEPH_DEV_POOL) and returns once
#                                   a write to it succeeds. Prints `ceph-dev: ready ...`.
#   scripts/ceph-dev.sh stop DIR    stops the daemons it started (by the PIDs in DIR/run),
#                                   OSD before monitor, then removes DIR.
#   scripts/ceph-dev.sh stop-osd DIR / start-osd DIR
#                                   stops the OSD (by its PID), or starts it again and
#                                   returns once the pool takes writes: an OSD outage for
#                                   tests. Needs CEPH_DEV_STORE=bluestore at start (a
#                                   memstore OSD loses its data when it stops).
#
# Choices: the OSD uses memstore (data in the OSD's memory, CEPH_DEV_MEMSTORE_BYTES, default
# 2 GiB; CEPH_DEV_STORE=bluestore for a BlueStore on a sparse file DIR/osd/osd.0/block of
# CEPH_DEV_BLUESTORE_BYTES, default 10 GiB, which survives an OSD restart) and auth is
# `none` (no keyring, no cephx): a loopback-only test cluster. No manager daemon is started;
# librados and the `ceph`/`rados` tools do not need one. Ports are free loopback ports picked at
# start, so several clusters (one per test run) can run side by side.
# Every wait is bounded (CEPH_DEV_TIMEOUT seconds per step, default 60); on failure the script
# stops what it started, prints the log tail, and exits 1.
# Clients: `ceph -c DIR/ceph.conf ...`, `rados -c DIR/ceph.conf -p mgreg ...`, or
# MGREG_TEST_CEPH_CONF=DIR/ceph.conf for the tests.
set -euo pipefail

usage() { echo "usage: $0 start DIR | stop DIR | stop-osd DIR | start-osd DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd="$1"
D="$2"
timeout_s="${CEPH_DEV_TIMEOUT:-60}"
pool="${CEPH_DEV_POOL:-mgreg}"
store="${CEPH_DEV_STORE:-memstore}"

log() { echo "ceph-dev: $*" >&2; }

# wait_for SECONDS DESCRIPTION COMMAND...: runs COMMAND every 0.25 s until it succeeds.
wait_for() {
  local limit="$1" what="$2"
  shift 2
  local deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "gave up after ${limit}s waiting for $what"
      return 1
    fi
    sleep 0.25
  done
}

# Sends SIGTERM to every daemon whose pid file is in DIR/run (OSD first), waits up to
# CEPH_DEV_TIMEOUT seconds for each to exit, then SIGKILLs what is left.
# `stop_daemons osd` stops only the OSD.
stop_daemons() {
  local f pid files=("$D"/run/osd.*.pid)
  if [ "${1:-all}" = all ]; then files+=("$D"/run/mon.*.pid); fi
  for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    pid="$(cat "$f")"
    [ -n "$pid" ] || continue
    # A reused PID belonging to something else is left alone.
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "ceph-"; then
      kill -TERM "$pid" 2>/dev/null || true
      local deadline=$(( $(date +%s) + timeout_s ))
      while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then
        log "$(basename "$f" .pid) (pid $pid) ignored SIGTERM for ${timeout_s}s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
    rm -f "$f"
  done
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
  for b in ceph-mon ceph-osd ceph monmaptool rados uuidgen; do
    command -v "$b" >/dev/null 2>&1 || {
      log "$b not found: install the Ceph packages with scripts/install-deps.sh rados"
      exit 1
    }
  done
  case "$store" in
    memstore|bluestore) ;;
    *) log "CEPH_DEV_STORE=$store: use memstore or bluestore"; exit 2 ;;
  esac
  if [ -e "$D/ceph.conf" ]; then
    log "$D already holds a cluster (ceph.conf); run '$0 stop $D' first or choose another DIR"
    exit 1
  fi
  mkdir -p "$D"
  D="$(cd "$D" && pwd)"
  mkdir -p "$D/run" "$D/log" "$D/mon" "$D/osd" "$D/crash"
  local fsid osd_uuid mon_v1 mon_v2
  fsid="$(uuidgen)"
  osd_uuid="$(uuidgen)"
  mon_v1="$(free_port)"
  mon_v2="$(free_port)"
  while [ "$mon_v2" = "$mon_v1" ]; do mon_v2="$(free_port)"; done

  cat >"$D/ceph.conf" <<EOF
# Written by scripts/ceph-dev.sh: a single-node development cluster, auth none, loopback only.
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$mon_v2,v1:127.0.0.1:$mon_v1]
public_network = 127.0.0.0/8
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_mgr_mkfs_grace = 31536000
mon_warn_on_pool_no_redundancy = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
mon_data_avail_warn = 2
mon_data_avail_crit = 1
paxos_propose_interval = ${CEPH_DEV_PAXOS:-0.1}
run_dir = $D/run
pid_file = $D/run/\$name.pid
admin_socket = $D/run/\$name.asok
log_file = $D/log/\$name.log
crash_dir = $D/crash
ms_bind_ipv4 = true
ms_bind_ipv6 = false
[mon]
mon_data = $D/mon/\$name
[osd]
osd_data = $D/osd/\$name
osd_objectstore = $store
osd_fast_shutdown = false
memstore_device_bytes = ${CEPH_DEV_MEMSTORE_BYTES:-2147483648}
bluestore_block_size = ${CEPH_DEV_BLUESTORE_BYTES:-10737418240}
bluestore_block_create = true
# Each client process its own admin socket: with one path for all, every new Rados handle
# pings (and may unlink) another process's socket (docs/reliability.md "Broken pipes").
[client]
admin_socket = $D/run/\$name.\$pid.\$cctid.asok
EOF
  export CEPH_CONF="$D/ceph.conf"
  # From here on, any failure stops what was started.
  trap 'log "start failed; log tails:"; tail -n 5 "$D"/log/*.log >&2 2>/dev/null || true
        stop_daemons; exit 1' ERR

  local t0
  t0="$(date +%s.%N)"
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_v2,v1:127.0.0.1:$mon_v1]" \
    "$D/monmap" >/dev/null
  timeout "$timeout_s" ceph-mon --mkfs -i a --monmap "$D/monmap" >"$D/log/mon-mkfs.log" 2>&1
  # Both daemons fork into the background (pids in $D/run); their standard streams go to
  # files so that a caller reading this script's output is not kept waiting by them.
  timeout "$timeout_s" ceph-mon -i a </dev/null >"$D/log/mon-start.log" 2>&1
  wait_for "$timeout_s" "the monitor to form a quorum" \
    timeout 10 ceph --connect-timeout 5 quorum_status

  local id
  id="$(timeout "$timeout_s" ceph --connect-timeout 5 osd new "$osd_uuid")"
  mkdir -p "$D/osd/osd.$id"
  timeout "$timeout_s" ceph-osd -i "$id" --mkfs --osd-uuid "$osd_uuid" >"$D/log/osd-mkfs.log" 2>&1
  timeout "$timeout_s" ceph-osd -i "$id" </dev/null >"$D/log/osd-start.log" 2>&1
  wait_for "$timeout_s" "osd.$id to be up" \
    bash -c "timeout 10 ceph --connect-timeout 5 osd dump | grep -q '^osd.$id up'"

  timeout "$timeout_s" ceph --connect-timeout 5 osd pool create "$pool" 8 8 replicated >/dev/null 2>&1
  timeout "$timeout_s" ceph --connect-timeout 5 osd pool application enable "$pool" mgreg \
    >/dev/null 2>&1
  wait_for "$timeout_s" "pool $pool to accept writes" \
    bash -c "echo ready | timeout 10 rados -p '$pool' put ceph-dev-probe -"
  timeout "$timeout_s" rados -p "$pool" rm ceph-dev-probe
  trap - ERR
  log "ready in $(/usr/bin/python3 -c "import time; print(f'{time.time()-$t0:.1f}')")s:" \
      "conf $D/ceph.conf, pool $pool, monitor 127.0.0.1:$mon_v2, osd.$id ($store)"
}

# The cluster in DIR, for the OSD verbs: refuses memstore, whose data would be lost.
existing_bluestore() {
  if [ ! -f "$D/ceph.conf" ]; then log "$D holds no ceph.conf: not a ceph-dev.sh cluster"; exit 1; fi
  if ! grep -q "^osd_objectstore = bluestore" "$D/ceph.conf"; then
    log "$D runs a memstore OSD, which loses its data when it stops: start the cluster" \
        "with CEPH_DEV_STORE=bluestore to stop and start its OSD"
    exit 1
  fi
  export CEPH_CONF="$D/ceph.conf"
}

start_osd() {
  local dir id
  for dir in "$D"/osd/osd.*; do
    id="${dir##*/osd.}"
    if [ -f "$D/run/osd.$id.pid" ] && kill -0 "$(cat "$D/run/osd.$id.pid")" 2>/dev/null; then
      log "osd.$id already runs"
      continue
    fi
    timeout "$timeout_s" ceph-osd -i "$id" </dev/null >>"$D/log/osd-start.log" 2>&1
    wait_for "$timeout_s" "osd.$id to be up" \
      bash -c "timeout 10 ceph --connect-timeout 5 osd dump | grep -q '^osd.$id up'"
  done
  wait_for "$timeout_s" "pool $pool to accept writes" \
    bash -c "echo ready | timeout 10 rados -p '$pool' put ceph-dev-probe -"
  timeout "$timeout_s" rados -p "$pool" rm ceph-dev-probe
  log "OSD up: pool $pool takes writes"
}

case "$cmd" in
  start) start ;;
  stop-osd) existing_bluestore; stop_daemons osd ;;
  start-osd) existing_bluestore; start_osd ;;
  stop)
    if [ ! -d "$D" ]; then log "$D does not exist: nothing to stop"; exit 0; fi
    if [ ! -f "$D/ceph.conf" ]; then
      log "$D holds no ceph.conf: not a ceph-dev.sh cluster; left untouched"
      exit 1
    fi
    stop_daemons
    rm -rf "$D"
    ;;
  *) usage ;;
esac
