#include "server/core/reusable_content.h"

#include <optional>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "common/status_macros.h"
#include "storage/blob_key.h"

namespace mgreg {

// Cost: a lookup whose digest the scope's cached set holds costs one hash lookup. A
// miss reads the store's revision (GetStats); only if the store changed since the set
// was read is the set rebuilt: ListModels over the scope's prefixes, ListCheckpoints of
// each of its models, and one GetBlob per distinct file (for its chunk digests), i.e.
// proportional to the scope's own steps and files (at most kMaxFilesPerScope), never to
// the whole store. Callers ask only about content the store holds (a miss for content
// nobody holds never gets here), so in practice a restricted writer pays one rebuild
// per push that reuses content, and unrestricted callers pay nothing. Memory: about
// 100 bytes per distinct file and chunk of the cached scopes.
absl::StatusOr<bool> ReusableContent::MayReuseFile(const ContentScope& scope,
                                                   absl::string_view blob_key) {
  if (scope.everything) return true;
  return Check(scope,
               [blob_key](const Digests& d) { return d.files.contains(blob_key); });
}

absl::StatusOr<bool> ReusableContent::MayReuseChunk(const ContentScope& scope,
                                                    absl::string_view sha256_raw) {
  if (scope.everything) return true;
  return Check(scope,
               [sha256_raw](const Digests& d) { return d.chunks.contains(sha256_raw); });
}

absl::StatusOr<bool> ReusableContent::Check(
    const ContentScope& scope, const std::function<bool(const Digests&)>& contains) {
  std::shared_ptr<Slot> slot;
  {
    absl::MutexLock lock(&mu_);
    auto it = slots_.find(scope.key);
    if (it == slots_.end()) {
      if (slots_.size() >= kMaxScopes) slots_.erase(slots_.begin());
      it = slots_.emplace(scope.key, std::make_shared<Slot>()).first;
    }
    slot = it->second;
  }
  // One rebuild per scope at a time; other scopes go on.
  absl::MutexLock lock(&slot->mu);
  // A digest once seen under the scope stays reusable even if its step was deleted
  // since: the caller could read that content then.
  if (slot->digests != nullptr && contains(*slot->digests)) return true;
  ASSIGN_OR_RETURN(StoreStats stats, store_->GetStats());
  if (slot->digests != nullptr && slot->digests->revision == stats.revision) return false;
  ASSIGN_OR_RETURN(slot->digests, Build(scope, stats.revision));
  return contains(*slot->digests);
}

absl::StatusOr<std::shared_ptr<const ReusableContent::Digests>> ReusableContent::Build(
    const ContentScope& scope, int64_t revision) {
  constexpr int kPage = 1000;
  auto out = std::make_shared<Digests>();
  out->revision = revision;
  int64_t files = 0;
  std::set<std::string> models_seen;  // prefixes may overlap
  for (const std::string& prefix : scope.model_prefixes) {
    // The greatest name below every name starting with `prefix` (as ListModels pages).
    std::string after;
    if (!prefix.empty()) {
      after = prefix;
      after.back() = static_cast<char>(after.back() - 1);
      after += '\xff';
    }
    for (;;) {
      ASSIGN_OR_RETURN(std::vector<storage::ModelRecord> models,
                       store_->ListModels(after, kPage));
      bool past_prefix = false;
      for (const storage::ModelRecord& m : models) {
        if (!absl::StartsWith(m.name(), prefix)) {
          past_prefix = true;
          break;
        }
        if (!scope.covers(m.name()) || !models_seen.insert(m.name()).second) continue;
        std::optional<int64_t> step_after;
        for (;;) {
          absl::StatusOr<std::vector<storage::CheckpointRecord>> steps =
              store_->ListCheckpoints(m.name(), step_after, kPage);
          if (!steps.ok()) {
            // Deleted since it was listed: nothing of it to reuse.
            if (steps.status().code() == absl::StatusCode::kNotFound) break;
            return steps.status();
          }
          for (const storage::CheckpointRecord& r : *steps) {
            for (const storage::FileRecord& f : r.files()) {
              if (++files > kMaxFilesPerScope) return out;
              const std::string key = BlobKey(f);
              if (!out->files.insert(key).second) continue;
              absl::StatusOr<storage::BlobRecord> blob = store_->GetBlob(key);
              if (!blob.ok()) {
                if (blob.status().code() == absl::StatusCode::kNotFound) continue;
                return blob.status();
              }
              for (const storage::ChunkRef& c : blob->chunks())
                out->chunks.insert(c.sha256());
            }
          }
          if (static_cast<int>(steps->size()) < kPage) break;
          step_after = steps->back().step();
        }
      }
      if (past_prefix || static_cast<int>(models.size()) < kPage) break;
      after = models.back().name();
    }
  }
  return out;
}

}  // namespace mgreg
