#include "server/core/export_cache.h"

namespace mgreg {

ExportCache::ExportCache(size_t capacity_bytes) : capacity_(capacity_bytes) {}

std::shared_ptr<const CachedExport> ExportCache::Lookup(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

void ExportCache::Insert(const std::string& key,
                         std::shared_ptr<const CachedExport> value) {
  const size_t size = value->bytes.size();
  if (capacity_ == 0 || size > capacity_) return;
  absl::MutexLock lock(&mu_);
  if (auto it = index_.find(key); it != index_.end()) {
    bytes_ -= it->second->second->bytes.size();
    lru_.erase(it->second);
    index_.erase(it);
  }
  while (bytes_ + size > capacity_ && !lru_.empty()) {
    bytes_ -= lru_.back().second->bytes.size();
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  lru_.emplace_front(key, std::move(value));
  index_[key] = lru_.begin();
  bytes_ += size;
}

int64_t ExportCache::hits() const {
  absl::MutexLock lock(&mu_);
  return hits_;
}
int64_t ExportCache::misses() const {
  absl::MutexLock lock(&mu_);
  return misses_;
}
size_t ExportCache::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

}  // namespace mgreg
