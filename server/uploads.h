// Open uploads: their manifest, the bytes held of each file, and the staging area that
// keeps those bytes until the commit. Kept in memory: an upload does not survive a
// server restart (its staged chunks are collected when the store reopens).
#ifndef MGREG_SERVER_UPLOADS_H_
#define MGREG_SERVER_UPLOADS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/sha256.h"
#include "mgreg/storage/records.pb.h"
#include "mgreg/v1/registry.pb.h"
#include "storage/store.h"

namespace mgreg {

// What the upload knows of one announced file.
struct UploadFileState {
  storage::FileRecord file;
  // Bytes held, from offset 0, in whole chunks (or the whole file once complete).
  int64_t held = 0;
  // SHA-256 state over bytes [0, held).
  Sha256 hasher;
  std::vector<storage::ChunkRef> chunks;
  // All bytes held and the digest verified, or the content was already stored.
  bool complete = false;
  // The content was in the store before this upload (no chunks staged for it).
  bool already_stored = false;
  // A PutFile stream is writing this file now.
  bool writing = false;
};

// One open upload. Immutable fields are set at creation; the rest is guarded by mu.
class UploadSession {
 public:
  UploadSession(std::string id, const v1::BeginUploadRequest& request,
                std::unique_ptr<StagingArea> staging, std::string owner = "");

  const std::string& id() const { return id_; }
  // Who began the upload, for reusing its chunks in the same principal's other uploads
  // ("" for a caller that may reuse everything).
  const std::string& owner() const { return owner_; }
  const v1::BeginUploadRequest& request() const { return request_; }
  StagingArea* staging() const { return staging_.get(); }

  absl::Mutex mu;
  std::map<std::string, UploadFileState> files ABSL_GUARDED_BY(mu);
  absl::Time last_active ABSL_GUARDED_BY(mu);
  // Set once the upload was committed, aborted or expired: no more writes.
  bool closed ABSL_GUARDED_BY(mu) = false;
  // The prefix basename: the request's, or learned from the first writer that gave one
  // when the upload began without it. Empty until then.
  std::string basename ABSL_GUARDED_BY(mu);

  // Learns `writer_basename` (already validated) if the upload has no basename yet.
  // INVALID_ARGUMENT if an earlier writer gave a different one. Requires mu held.
  absl::Status LearnBasename(absl::string_view writer_basename)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // The API view of the upload. Requires mu held.
  v1::Upload ToProto() const ABSL_SHARED_LOCKS_REQUIRED(mu);

 private:
  const std::string id_;
  const std::string owner_;
  const v1::BeginUploadRequest request_;
  const std::unique_ptr<StagingArea> staging_;
};

// Writes one file of an open upload, message by message (PutFile).
class FileSink {
 public:
  virtual ~FileSink() = default;
  // Appends the next bytes. DATA_LOSS if the file's SHA-256 does not match once all
  // bytes are there (the file restarts from 0); INVALID_ARGUMENT if more bytes arrive
  // than announced. After an error the sink is unusable.
  virtual absl::Status Append(absl::string_view data) = 0;
  // Appends a chunk the store already holds (SHA-256, 32 raw bytes) as the next
  // chunk_bytes of the file (fewer at its end), without its bytes crossing the network.
  // INVALID_ARGUMENT if not at a chunk boundary or the chunk's size does not fit;
  // NOT_FOUND if the store does not hold the chunk; DATA_LOSS as Append.
  virtual absl::Status AppendExistingChunk(absl::string_view sha256) = 0;
  // The stream ended. DATA_LOSS if the file is still incomplete (its whole chunks are
  // kept: a new stream resumes at the held bytes the message names).
  virtual absl::StatusOr<v1::PutFileResponse> Finish() = 0;
};

// Opens a sink for `name` of `session`, starting at `offset` (0 restarts the file;
// otherwise it must equal the held bytes).
// INVALID_ARGUMENT if the file is not in the manifest; FAILED_PRECONDITION if another stream
// writes it, the upload is closed, or the offset is not 0 or the held bytes.
// `store` (for existing chunks) must outlive the sink. `may_reuse_chunk` says whether the
// writer may name a chunk (32-byte SHA-256) instead of sending it; a chunk it may not
// reuse is answered as one the store does not hold.
absl::StatusOr<std::unique_ptr<FileSink>> OpenUploadFileSink(
    std::shared_ptr<UploadSession> session, const std::string& name, int64_t offset,
    size_t chunk_bytes, Store* store,
    std::function<absl::StatusOr<bool>(const std::string& sha256_raw)> may_reuse_chunk);

// The set of open uploads by id.
class UploadManager {
 public:
  UploadManager() = default;

  // Registers a new session of `owner` and returns it.
  std::shared_ptr<UploadSession> Create(const v1::BeginUploadRequest& request,
                                        std::unique_ptr<StagingArea> staging,
                                        std::string owner = "");
  // True if an open upload of `owner` (not "") holds the chunk (32-byte SHA-256).
  bool OwnerHoldsChunk(const std::string& owner, const std::string& sha256_raw);
  // NOT_FOUND if no such upload is open (never existed, committed, aborted, expired).
  absl::StatusOr<std::shared_ptr<UploadSession>> Find(absl::string_view id);
  // Removes the session (closing it); a no-op if it is gone already.
  void Remove(absl::string_view id);
  // Removes and returns the sessions idle since before `cutoff`, also those with a file
  // being written: a writer that sends nothing holds its upload no longer than that.
  std::vector<std::shared_ptr<UploadSession>> TakeIdle(absl::Time cutoff);
  size_t open_count();

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<UploadSession>> sessions_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace mgreg

#endif  // MGREG_SERVER_UPLOADS_H_
