// A byte-bounded LRU cache of filtered exports, keyed by (graph digest, options).
// Valid because an export is a deterministic function of both (EXPORT_SEMANTICS D7).
// Thread-safe.
#ifndef MGREG_SERVER_CORE_EXPORT_CACHE_H_
#define MGREG_SERVER_CORE_EXPORT_CACHE_H_

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace mgreg {

// One cached export: the bytes and what the response reports about them.
struct CachedExport {
  std::string bytes;
  std::string sha256;
  int64_t node_count = 0;
  std::vector<std::string> collections;
  // SavedModel steps: the tag set of the MetaGraphDef exported.
  std::vector<std::string> tags;
};

class ExportCache {
 public:
  // Holds at most `capacity_bytes` of export bytes; 0 disables caching.
  explicit ExportCache(size_t capacity_bytes);

  // The cached export for `key`, or nullptr (counted as a miss).
  std::shared_ptr<const CachedExport> Lookup(const std::string& key);
  // Inserts, evicting the least recently used entries. An entry larger than the
  // capacity is not cached.
  void Insert(const std::string& key, std::shared_ptr<const CachedExport> value);

  int64_t hits() const;
  int64_t misses() const;
  size_t bytes() const;

 private:
  using Entry = std::pair<std::string, std::shared_ptr<const CachedExport>>;
  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::list<Entry> lru_ ABSL_GUARDED_BY(mu_);  // most recent first
  absl::flat_hash_map<std::string, std::list<Entry>::iterator> index_
      ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_EXPORT_CACHE_H_
