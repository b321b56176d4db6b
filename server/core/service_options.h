// What the registry service is configured with (RegistryServiceOptions), and the two
// small types every group of calls shares: the stream of messages a read returns
// (MessageSource) and the filter of the models a caller may see (ModelFilter).
#ifndef MGREG_SERVER_CORE_SERVICE_OPTIONS_H_
#define MGREG_SERVER_CORE_SERVICE_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "metagraph/collection_kinds.h"
#include "mgreg/storage/records.pb.h"

namespace mgreg {

struct RegistryServiceOptions {
  // Bytes per chunk of uploaded files (files are cut at multiples of it) and per
  // streamed message when reading.
  size_t chunk_bytes = 1u << 20;
  // Uploads idle for longer are aborted and their staged bytes collected.
  absl::Duration upload_ttl = absl::Hours(1);
  // How long a PutFile stream holds its file without a message; after that a stream on
  // any server sharing the store may take the file over (e.g. the first server died).
  // Capped at upload_ttl / 2, so that a writer's renewals keep its upload alive.
  absl::Duration upload_writer_lease = absl::Seconds(30);
  // Upper bound of the bytes kept by the filtered-export cache.
  size_t export_cache_bytes = 256u << 20;
  // Retention of models without a policy of their own (max_to_keep 0 keeps all).
  storage::RetentionPolicy default_retention;
  // Largest checkpoint (sum of its file sizes) an upload may hold, announced at
  // BeginUpload or learned from PutFile headers; 0 = no limit.
  int64_t max_upload_bytes = 0;
  // Largest .meta an upload may hold (its export holds it parsed); 0 = no limit.
  int64_t max_meta_bytes = kDefaultMaxMetaBytes;
  // Open uploads on the whole service (every caller), and per writer (the principal
  // BeginUpload names); 0 = no limit. See UploadQuota.
  int max_open_uploads = 0;
  int max_concurrent_uploads_per_writer = 0;
  // Working memory of graph exports, .meta validation and server streams (see
  // MemoryBudget); 0 = no limit.
  int64_t memory_budget_bytes = kDefaultMemoryBudgetBytes;
  // The store's data dir (empty in memory): backups may not go inside it.
  std::string data_dir;
  // Collection kinds the config registers besides TensorFlow's (null: none): decoded by
  // GetCollection, filtered and stripped by GetMetaGraph's export_scope.
  std::shared_ptr<const CollectionKinds> collection_kinds;

  static constexpr int64_t kDefaultMaxMetaBytes = 128ll << 20;
  static constexpr int64_t kDefaultMemoryBudgetBytes = 1ll << 30;
  // Working memory an export reserves per byte of its stored .meta (the stored bytes,
  // the parsed graph and the output at once; measured below 4.5x, see README), and a
  // commit's .meta validation.
  static constexpr int64_t kExportMemoryFactor = 5;
  static constexpr int64_t kValidateMemoryFactor = 3;
};

// Produces the messages of a server stream one at a time.
template <typename Message>
class MessageSource {
 public:
  virtual ~MessageSource() = default;
  // Fills `out` and returns true, or returns false at the end of the stream.
  virtual absl::StatusOr<bool> Next(Message* out) = 0;
};

// The visibility rule of listings and watches: a caller sees only the models the
// filter accepts (a token limited to model prefixes sees only its models). A null
// filter sees every model.
using ModelFilter = std::function<bool(absl::string_view model)>;

inline bool Visible(const ModelFilter& filter, absl::string_view model) {
  return filter == nullptr || filter(model);
}

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_SERVICE_OPTIONS_H_
