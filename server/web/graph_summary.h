// A summary of a stored MetaGraphDef for the step page: node and function counts, the
// op histogram, devices, collections and their sizes, the MetaInfoDef's tags (the tag
// set of a graph taken from a SavedModel), signatures, and whether it has a saver.
//
// Computed by walking the protobuf wire format as the file's chunks stream in: memory
// is one chunk plus the summary itself, never the whole graph (a .meta can be tens of
// MB).
#ifndef MGREG_SERVER_WEB_GRAPH_SUMMARY_H_
#define MGREG_SERVER_WEB_GRAPH_SUMMARY_H_

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "mgreg/v1/registry.pb.h"
#include "server/core/registry_service.h"

namespace mgreg::web {

struct GraphSummary {
  int64_t bytes = 0;
  int64_t node_count = 0;
  int64_t function_count = 0;
  // op -> nodes with that op.
  std::map<std::string, int64_t> ops;
  // device -> nodes placed there ("" = no device).
  std::map<std::string, int64_t> devices;
  struct Collection {
    std::string name;
    // "node_list", "bytes_list", "int64_list", "float_list", "any_list" or "empty".
    std::string kind;
    int64_t size = 0;
  };
  // Sorted by name (the file's map order is not meaningful).
  std::vector<Collection> collections;
  std::vector<std::string> tags;
  std::vector<std::string> signatures;
  std::string tensorflow_version;
  bool has_saver = false;
};

// Summarizes the MetaGraphDef whose bytes `source` streams. INVALID_ARGUMENT if the
// bytes are not a well-formed MetaGraphDef at the wire level; the source's errors.
absl::StatusOr<GraphSummary> SummarizeMetaGraph(MessageSource<v1::FileChunk>& source);

// Summarizes each MetaGraphDef of the binary SavedModel (saved_model.pb) whose bytes
// `source` streams, in stored order (bytes = the MetaGraphDef's own size).
// INVALID_ARGUMENT if the bytes are not a well-formed SavedModel holding a MetaGraphDef.
absl::StatusOr<std::vector<GraphSummary>> SummarizeSavedModel(
    MessageSource<v1::FileChunk>& source);

// Summaries by graph SHA-256, the most recently used `capacity` kept: every step of a
// model usually stores the identical .meta, so its summary is computed once.
// Thread-safe.
class GraphSummaryCache {
 public:
  explicit GraphSummaryCache(size_t capacity) : capacity_(capacity) {}
  std::shared_ptr<const GraphSummary> Find(const std::string& sha256);
  void Insert(const std::string& sha256, std::shared_ptr<const GraphSummary> summary);

 private:
  const size_t capacity_;
  absl::Mutex mu_;
  // Most recent first.
  std::list<std::pair<std::string, std::shared_ptr<const GraphSummary>>> entries_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace mgreg::web

#endif  // MGREG_SERVER_WEB_GRAPH_SUMMARY_H_
