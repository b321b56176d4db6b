// Which stored content a caller may reuse without sending it (issue 11 item 6).
//
// Whole-file deduplication at BeginUpload (held_bytes), FindChunks answers and PutFile's
// existing_chunk let a writer name content instead of sending it. Naming content is not
// proof of having it: a writer of team-a/ that announces the SHA-256 and size of a
// team-b/ file must not get that file into its own model (and then read it), nor learn
// that the store holds it. So content is reused only when the caller may read a
// committed step that references it (a step of a model its token covers), or when the
// caller is unrestricted (no tokens configured, or a token without model prefixes).
// Otherwise the service answers as if it did not hold the content and asks for the
// bytes; storage still deduplicates them physically, which the caller cannot observe.
//
// Thread safety: all methods may be called concurrently.
#ifndef MGREG_SERVER_CORE_REUSABLE_CONTENT_H_
#define MGREG_SERVER_CORE_REUSABLE_CONTENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "storage/store.h"

namespace mgreg {

// What a caller may read, for deciding what it may reuse.
struct ContentScope {
  // Every model (no tokens configured, or a token without model prefixes).
  static ContentScope Everything() { return ContentScope(); }

  bool everything = true;
  // When !everything: names the cache entry (the token's grant name; grants do not
  // change while the server runs).
  std::string key;
  // When !everything: the model-name prefixes to scan, and the exact rule of which
  // models the caller may read (the Authorizer's, on segment boundaries).
  std::vector<std::string> model_prefixes;
  std::function<bool(absl::string_view model)> covers;
};

class ReusableContent {
 public:
  // `store` must outlive this.
  explicit ReusableContent(Store* store) : store_(store) {}

  // True if `scope` may reuse the whole file with this SHA-256 (hex): some step it may
  // read references it. Errors are the store's.
  absl::StatusOr<bool> MayReuseFile(const ContentScope& scope,
                                    absl::string_view blob_key);
  // True if `scope` may reuse the chunk with this SHA-256 (32 raw bytes): a file of a
  // step it may read contains it. Errors are the store's.
  absl::StatusOr<bool> MayReuseChunk(const ContentScope& scope,
                                     absl::string_view sha256_raw);

  // At most this many files are read per scope; content of a scope's further steps is
  // then not reused (the bytes are asked for), which costs bandwidth, never safety.
  static constexpr int64_t kMaxFilesPerScope = 200000;
  // Scopes cached at once (one per restricted token in use).
  static constexpr size_t kMaxScopes = 64;

 private:
  // The file and chunk digests referenced by the steps a scope may read, as of a store
  // revision.
  struct Digests {
    int64_t revision = -1;
    absl::flat_hash_set<std::string> files;   // blob keys (storage/blob_key.h)
    absl::flat_hash_set<std::string> chunks;  // SHA-256 raw
  };
  struct Slot {
    absl::Mutex mu;
    std::shared_ptr<const Digests> digests ABSL_GUARDED_BY(mu);
  };

  // True if `contains(digests)` holds for the scope's cached digests, rebuilding them
  // first if they miss it and the store has changed since they were read.
  absl::StatusOr<bool> Check(const ContentScope& scope,
                             const std::function<bool(const Digests&)>& contains);
  // Reads the digests of every step `scope` may read.
  absl::StatusOr<std::shared_ptr<const Digests>> Build(const ContentScope& scope,
                                                       int64_t revision);

  Store* const store_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Slot>> slots_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_REUSABLE_CONTENT_H_
