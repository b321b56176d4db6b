// The RADOS backend's cache of the catalog's model records and latest steps (GetModel,
// GetLatest and the planner's reads), kept as of one published transaction
// (storage/rados/rados_backend.h).
#include <map>
#include <string>

#include "storage/rados/rados_backend.h"

namespace mgreg::rados {
namespace {

// A cache this big is emptied rather than grown (names nobody pushed are cached too).
constexpr size_t kMaxCached = 100000;

}  // namespace

void RadosBackend::ObserveVersion(uint64_t version) {
  absl::MutexLock lock(&cache_mu_);
  if (version <= cache_version_) return;
  cache_version_ = version;
  cache_.clear();
}

absl::StatusOr<std::optional<std::string>> RadosBackend::ReadCachedRaw(
    const std::string& key) {
  {
    absl::MutexLock lock(&cache_mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
  }
  // The record and the head in one read: the value is the one of the head's version.
  std::map<std::string, bufferlist> vals;
  librados::ObjectReadOperation op;
  int rv = 0;
  op.omap_get_vals_by_keys({"head", key}, &vals, &rv);
  int r = io_.operate(kCatalog, &op, nullptr);
  if (r < 0 || rv < 0) return Error(r < 0 ? r : rv, "reading the catalog", kCatalog);
  auto h = vals.find("head");
  if (h == vals.end()) return absl::InternalError(absl::StrCat("no head in ", where_));
  ASSIGN_OR_RETURN(storage::rados::RadosHead head,
                   Parse<storage::rados::RadosHead>(h->second, kCatalog));
  auto it = vals.find(key);
  std::optional<std::string> raw;
  if (it != vals.end()) raw = it->second.to_str();
  ObserveVersion(head.version());
  absl::MutexLock lock(&cache_mu_);
  if (head.version() == cache_version_) {
    if (cache_.size() >= kMaxCached) cache_.clear();
    cache_[key] = raw;
  }
  return raw;
}

}  // namespace mgreg::rados
