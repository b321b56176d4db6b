// The calls that read committed steps: the latest or a given step, listings of models
// and steps (paged, and filtered by what the caller may see), a file's bytes from an
// offset, the MetaGraphDef (stored bytes verbatim, or a filtered export kept in the
// export cache) and one collection of it decoded; and watches on new steps.
//
// Thread safety: all methods may be called concurrently. A MessageSource is used by
// one thread at a time.
#ifndef MGREG_SERVER_CORE_READ_CALLS_H_
#define MGREG_SERVER_CORE_READ_CALLS_H_

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "mgreg/v1/registry.pb.h"
#include "server/core/export_cache.h"
#include "server/core/memory_budget.h"
#include "server/core/service_options.h"
#include "server/core/watch_hub.h"
#include "storage/store.h"

namespace mgreg {

class ReadCalls {
 public:
  // Every pointer must outlive the calls.
  ReadCalls(Store* store, const RegistryServiceOptions* options, MemoryBudget* memory)
      : store_(store),
        options_(options),
        memory_(memory),
        export_cache_(options->export_cache_bytes),
        watch_hub_(store) {}

  // RegistryService's methods of the same names (see registry_service.h).
  absl::StatusOr<v1::Checkpoint> GetLatestCheckpoint(
      const v1::GetLatestCheckpointRequest& request);
  absl::StatusOr<v1::Checkpoint> GetCheckpoint(const v1::GetCheckpointRequest& request);
  absl::StatusOr<v1::ListModelsResponse> ListModels(const v1::ListModelsRequest& request,
                                                    const ModelFilter& visible);
  absl::StatusOr<v1::ListCheckpointsResponse> ListCheckpoints(
      const v1::ListCheckpointsRequest& request);
  absl::StatusOr<std::unique_ptr<MessageSource<v1::FileChunk>>> ReadFile(
      const v1::ReadFileRequest& request);
  absl::StatusOr<std::unique_ptr<MessageSource<v1::MetaGraphChunk>>> GetMetaGraph(
      const v1::GetMetaGraphRequest& request);
  absl::StatusOr<v1::GetCollectionResponse> GetCollection(
      const v1::GetCollectionRequest& request);
  absl::StatusOr<std::shared_ptr<WatchSubscription>> Watch(
      const v1::WatchCheckpointsRequest& request, std::function<void()> notify,
      ModelFilter visible);

  const ExportCache& export_cache() const { return export_cache_; }
  WatchHub& watch_hub() { return watch_hub_; }

 private:
  // The filtered export of the graph stored as `record`'s graph_sha256, from the cache
  // or made now (and cached).
  absl::StatusOr<std::shared_ptr<const CachedExport>> Export(
      const storage::CheckpointRecord& record, const v1::GraphOptions& options);

  Store* const store_;
  const RegistryServiceOptions* const options_;
  MemoryBudget* const memory_;
  ExportCache export_cache_;
  WatchHub watch_hub_;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_READ_CALLS_H_
