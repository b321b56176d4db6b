// The Store on Ceph RADOS (librados): N mgreg-server processes on one pool share one
// registry. The backend (storage/rados/rados_backend.h) keeps the records and chunk
// bytes in RADOS objects and applies the planner's transactions through a journal in the
// `catalog` object (../shared/design/RADOS_STORE.md; README "Ceph RADOS store").
#ifndef MGREG_STORAGE_RADOS_RADOS_STORE_H_
#define MGREG_STORAGE_RADOS_RADOS_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/store.h"

namespace mgreg {

// The biggest transaction the RADOS store takes: 120 MiB, below Ceph's default
// osd_max_object_size (128 MiB) for the object holding it; about 1.4 million chunks (a
// 5 TiB step at 4 MiB chunks, 1.4 TiB at 1 MiB).
inline constexpr int64_t kMaxTxnBytes = int64_t{120} << 20;

struct RadosStoreOptions {
  // The cluster's ceph.conf (mon_host, auth, keyring).
  std::string ceph_conf;
  // The RADOS user (client.<id>).
  std::string user = "client.admin";
  std::string pool = "mgreg";
  // One registry per namespace; "" is the pool's default namespace.
  std::string rados_namespace;
  // How many of the newest events to keep (at least 1).
  int64_t event_window = 100000;
  // Connecting and each RADOS operation give up after this long (UNAVAILABLE).
  int timeout_seconds = 30;

  // Liveness and garbage collection (README "Ceph RADOS store"). Each store watches the
  // catalog; a process that dies (or stops answering) drops out of its watchers
  // `watch_timeout` later. Every `gc_period`, one store at a time (under a RADOS lock)
  // releases the staging holds of the processes that have been out of the watchers for
  // `dead_after` (their uploads' chunks; a chunk nothing else holds or references is
  // freed), and removes blob tombstones older than `tombstone_ttl` (a tombstone fences
  // late applies of a stalled writer's transaction until then).
  absl::Duration watch_timeout = absl::Seconds(10);
  absl::Duration dead_after = absl::Minutes(2);
  absl::Duration gc_period = absl::Minutes(1);
  absl::Duration tombstone_ttl = absl::Hours(1);
  // Upload sessions (storage/session_store.h) live in the pool, so any process serves
  // any of their calls. One that no process wrote for this long is dropped by the GC,
  // its staged chunks released (the servers expire their idle uploads sooner:
  // --upload-ttl; this bounds what a session outlives every server that used it).
  absl::Duration session_expiry = absl::Hours(2);
  // Every this often, the collecting process also lists the namespace's chunk objects
  // and frees those no blob lists and nothing holds, last written more than dead_after
  // ago: what a write that failed half-way (its process died) left behind.
  absl::Duration orphan_scan_period = absl::Hours(1);
  // Store::Check freezes the registry while it reads the metadata (catalog, steps,
  // blobs, chunk xattrs; not the chunk bytes), so that it sees one consistent view: no
  // process decides a write meanwhile. A writer finding the registry frozen waits, with
  // a growing pause, at most this long, then answers UNAVAILABLE naming the freeze. A
  // checker that died while frozen holds writers up until it drops out of the
  // catalog's watchers (watch_timeout): the first writer to see that ends the freeze.
  absl::Duration freeze_wait = absl::Seconds(30);
  // A transaction (a commit lists every chunk of the blobs it creates, ~85 bytes each)
  // up to this size is stored inline in the catalog when decided; a bigger one is
  // written to an object of its own first (`tx.<instance>.<n>`), so that the catalog,
  // which every operation reads, stays small. A transaction above max_txn_bytes is
  // refused (RESOURCE_EXHAUSTED) and nothing is written.
  int64_t inline_txn_bytes = 64 << 10;
  int64_t max_txn_bytes = kMaxTxnBytes;

  // For crash tests: Apply stops (returning UNAVAILABLE) as a writer that died there
  // would: 1 right after deciding a transaction, 2 after applying it to the objects
  // but before publishing it. The next write (from any process) must roll it forward.
  int test_stop_after = 0;
  // For crash tests of whole servers: the process _exit()s (status 86) at this point of
  // a write: "before_decide", "after_decide", "between_applies" (chunks and blobs
  // applied, the model's steps not; also when rolling another's transaction forward),
  // "before_notify" (published; listeners and other processes not told), "check_frozen"
  // (Check froze the registry and has not unfrozen it). OpenRadosStore
  // sets it from the environment variable MGREG_RADOS_CRASH_AT when it is empty; never
  // set in production.
  std::string test_crash_at;
  // For tests: Check keeps the registry frozen this much longer (a long scan).
  absl::Duration test_hold_freeze = absl::ZeroDuration();
};

// Connects and opens (creating it in an empty namespace) the registry in
// options.pool / options.rados_namespace.
// Returns INVALID_ARGUMENT if ceph_conf or pool is empty.
// Returns FAILED_PRECONDITION if the conf file cannot be read, the pool does not exist,
//   or the namespace holds objects without mgreg's format marker (another program's).
// Returns UNAVAILABLE if the cluster cannot be reached within timeout_seconds.
absl::StatusOr<std::unique_ptr<Store>> OpenRadosStore(const RadosStoreOptions& options);

}  // namespace mgreg

#endif  // MGREG_STORAGE_RADOS_RADOS_STORE_H_
