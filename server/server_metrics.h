// The metrics mgreg-server exports on GET /metrics, by name. Labels are low-cardinality
// only (RPC method, status code): never model names.
#ifndef MGREG_SERVER_SERVER_METRICS_H_
#define MGREG_SERVER_SERVER_METRICS_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "server/metrics.h"
#include "storage/store.h"

namespace mgreg {

class RegistryService;

class ServerMetrics {
 public:
  ServerMetrics();

  metrics::Registry& registry() { return registry_; }

  // One finished RPC: its method ("GetLatestCheckpoint"), status code name ("OK",
  // "NOT_FOUND"), duration and the request and response bytes it carried. Both names
  // must have static storage (string literals): the series are cached by address, so
  // that recording a call allocates nothing.
  void RecordCall(const char* method, const char* code, absl::Duration duration,
                  int64_t bytes_in, int64_t bytes_out);
  // A call rejected by authorization (code is UNAUTHENTICATED or PERMISSION_DENIED).
  void RecordAuthFailure(const std::string& code);

  // Reads the service's and store's figures at every scrape. Both must outlive the
  // scrapes (ClearSources before destroying them).
  void SetSources(RegistryService* service, Store* store);
  void ClearSources();

 private:
  void Collect();

  // The metrics one (method, code) pair updates.
  struct CallSeries {
    metrics::Counter* requests;
    metrics::Histogram* latency;
    metrics::Counter* received;
    metrics::Counter* sent;
  };
  CallSeries Series(const char* method, const char* code);

  metrics::Registry registry_;
  metrics::Family<metrics::Counter>* requests_;
  metrics::Family<metrics::Histogram>* latency_;
  metrics::Family<metrics::Counter>* received_bytes_;
  metrics::Family<metrics::Counter>* sent_bytes_;
  metrics::Family<metrics::Counter>* auth_failures_;
  metrics::Gauge* watchers_;
  metrics::Gauge* uploads_open_;
  metrics::Counter* cache_hits_;
  metrics::Counter* cache_misses_;
  metrics::Gauge* cache_bytes_;
  metrics::Gauge* models_;
  metrics::Gauge* checkpoints_;
  metrics::Gauge* blobs_;
  metrics::Gauge* stored_bytes_;
  metrics::Gauge* staged_chunks_;
  metrics::Gauge* revision_;
  metrics::Gauge* rocksdb_blob_bytes_;
  metrics::Gauge* rocksdb_pending_compaction_bytes_;
  metrics::Gauge* rocksdb_live_sst_bytes_;
  metrics::Gauge* store_up_;
  metrics::Counter* log_lines_lost_;

  absl::Mutex series_mu_;
  absl::flat_hash_map<std::pair<const char*, const char*>, CallSeries> series_
      ABSL_GUARDED_BY(series_mu_);

  absl::Mutex sources_mu_;
  RegistryService* service_ ABSL_GUARDED_BY(sources_mu_) = nullptr;
  Store* store_ ABSL_GUARDED_BY(sources_mu_) = nullptr;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_SERVER_METRICS_H_
