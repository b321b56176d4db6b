#include "server/server_metrics.h"

#include "common/log.h"
#include "server/core/registry_service.h"

namespace mgreg {

ServerMetrics::ServerMetrics() {
  metrics::Registry& r = registry_;
  r.AddGauge("mgreg_build_info", "mgreg-server build; the value is always 1", {"version"})
      ->WithLabels({MGREG_VERSION})
      ->Set(1);
  requests_ =
      r.AddCounter("mgreg_grpc_requests_total",
                   "gRPC calls finished, by method and status code", {"method", "code"});
  latency_ = r.AddHistogram("mgreg_grpc_request_duration_seconds",
                            "gRPC call duration from start to status, by method",
                            metrics::LatencyBuckets(), {"method"});
  received_bytes_ =
      r.AddCounter("mgreg_grpc_received_bytes_total",
                   "bytes of request messages received, by method", {"method"});
  sent_bytes_ = r.AddCounter("mgreg_grpc_sent_bytes_total",
                             "bytes of response messages sent, by method", {"method"});
  auth_failures_ =
      r.AddCounter("mgreg_auth_failures_total",
                   "calls rejected by token authorization, by status code", {"code"});
  uploads_open_ = r.AddGauge("mgreg_upload_sessions_open",
                             "uploads begun and not yet "
                             "committed, aborted or expired")
                      ->WithLabels({});
  watchers_ = r.AddGauge("mgreg_watchers_connected", "Watch streams currently open")
                  ->WithLabels({});
  cache_hits_ = r.AddCounter("mgreg_export_cache_hits_total",
                             "filtered-graph exports served from the cache")
                    ->WithLabels({});
  cache_misses_ = r.AddCounter("mgreg_export_cache_misses_total",
                               "filtered-graph exports computed (not in the cache)")
                      ->WithLabels({});
  cache_bytes_ = r.AddGauge("mgreg_export_cache_bytes", "bytes held by the export cache")
                     ->WithLabels({});
  store_up_ =
      r.AddGauge("mgreg_store_up", "1 if the last read of the store's figures succeeded")
          ->WithLabels({});
  models_ =
      r.AddGauge("mgreg_store_models", "models with at least one step")->WithLabels({});
  checkpoints_ = r.AddGauge("mgreg_store_checkpoints", "committed steps")->WithLabels({});
  blobs_ =
      r.AddGauge("mgreg_store_blobs", "distinct file contents stored")->WithLabels({});
  stored_bytes_ = r.AddGauge("mgreg_store_stored_bytes",
                             "bytes of committed content after deduplication")
                      ->WithLabels({});
  staged_chunks_ =
      r.AddGauge("mgreg_store_staged_chunks", "chunks held only by open uploads")
          ->WithLabels({});
  revision_ =
      r.AddGauge("mgreg_store_revision", "the store-wide revision")->WithLabels({});
  rocksdb_blob_bytes_ = r.AddGauge("mgreg_rocksdb_blob_file_bytes",
                                   "bytes of RocksDB blob files (0 for a memory store)")
                            ->WithLabels({});
  rocksdb_pending_compaction_bytes_ =
      r.AddGauge("mgreg_rocksdb_pending_compaction_bytes",
                 "bytes RocksDB estimates compaction still has to rewrite")
          ->WithLabels({});
  rocksdb_live_sst_bytes_ = r.AddGauge("mgreg_rocksdb_live_sst_files_bytes",
                                       "bytes of the live RocksDB SST files")
                                ->WithLabels({});
  log_lines_lost_ = r.AddCounter("mgreg_log_lines_lost_total",
                                 "log lines stderr did not take (its reader gone: EPIPE)")
                        ->WithLabels({});
  r.AddCollectHook([this] { Collect(); });
}

// By value: a concurrent insert may move the map's slots.
ServerMetrics::CallSeries ServerMetrics::Series(const char* method, const char* code) {
  const std::pair<const char*, const char*> key(method, code);
  {
    absl::ReaderMutexLock lock(&series_mu_);
    if (auto it = series_.find(key); it != series_.end()) return it->second;
  }
  CallSeries series{requests_->WithLabels({method, code}), latency_->WithLabels({method}),
                    received_bytes_->WithLabels({method}),
                    sent_bytes_->WithLabels({method})};
  absl::MutexLock lock(&series_mu_);
  return series_.try_emplace(key, series).first->second;
}

void ServerMetrics::RecordCall(const char* method, const char* code,
                               absl::Duration duration, int64_t bytes_in,
                               int64_t bytes_out) {
  const CallSeries series = Series(method, code);
  series.requests->Increment();
  series.latency->Observe(absl::ToDoubleSeconds(duration));
  if (bytes_in > 0) series.received->Increment(static_cast<double>(bytes_in));
  if (bytes_out > 0) series.sent->Increment(static_cast<double>(bytes_out));
}

void ServerMetrics::RecordAuthFailure(const std::string& code) {
  auth_failures_->WithLabels({code})->Increment();
}

void ServerMetrics::SetSources(RegistryService* service, Store* store) {
  absl::MutexLock lock(&sources_mu_);
  service_ = service;
  store_ = store;
}

void ServerMetrics::ClearSources() { SetSources(nullptr, nullptr); }

void ServerMetrics::Collect() {
  log_lines_lost_->SetTotal(static_cast<double>(LogLinesLost()));
  absl::MutexLock lock(&sources_mu_);
  if (service_ != nullptr) {
    uploads_open_->Set(static_cast<double>(service_->open_uploads()));
    watchers_->Set(static_cast<double>(service_->watcher_count()));
    const ExportCache& cache = service_->export_cache();
    cache_hits_->SetTotal(static_cast<double>(cache.hits()));
    cache_misses_->SetTotal(static_cast<double>(cache.misses()));
    cache_bytes_->Set(static_cast<double>(cache.bytes()));
  }
  if (store_ != nullptr) {
    absl::StatusOr<StoreStats> stats = store_->GetStats();
    store_up_->Set(stats.ok() ? 1 : 0);
    if (stats.ok()) {
      models_->Set(static_cast<double>(stats->models));
      checkpoints_->Set(static_cast<double>(stats->checkpoints));
      blobs_->Set(static_cast<double>(stats->blobs));
      stored_bytes_->Set(static_cast<double>(stats->chunk_bytes));
      staged_chunks_->Set(static_cast<double>(stats->staged_chunks));
      revision_->Set(static_cast<double>(stats->revision));
      rocksdb_blob_bytes_->Set(static_cast<double>(stats->blob_file_bytes));
      rocksdb_pending_compaction_bytes_->Set(
          static_cast<double>(stats->pending_compaction_bytes));
      rocksdb_live_sst_bytes_->Set(static_cast<double>(stats->live_sst_bytes));
    }
  }
}

}  // namespace mgreg
