// Open uploads: their manifest, the bytes held of each file, and the staging area that
// keeps those bytes until the commit. The sessions live in the store
// (Store::sessions(), storage/session_store.h), so any server sharing the store serves
// any call of an upload: on RADOS a chief begins on one replica, workers put through
// others, and the commit may come through any. This server keeps a cache of the
// sessions its calls touched (UploadSession), refreshed from the store by every Find and
// written through on every change, except a PutFile stream's chunks: those are saved
// every few chunks and when the stream ends (UploadFileState::ahead_of_store). With the
// in-memory and RocksDB stores the sessions are in this process's memory: an upload does
// not survive a server restart (its staged chunks are collected when the store reopens).
#ifndef MGREG_SERVER_CORE_UPLOADS_H_
#define MGREG_SERVER_CORE_UPLOADS_H_

#include <cstdint>
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
#include "mgreg/storage/records.pb.h"
#include "mgreg/v1/registry.pb.h"
#include "server/core/upload_digests.h"
#include "storage/session_store.h"
#include "storage/store.h"

namespace mgreg {

// What the upload knows of one announced file (storage::UploadFileRecord, and the
// digest state this server has of its held bytes).
struct UploadFileState {
  storage::FileRecord file;
  // Bytes held, from offset 0, in whole chunks (or the whole file once complete).
  int64_t held = 0;
  std::vector<storage::ChunkRef> chunks;
  // All bytes held and the digest verified, or the content was already stored.
  bool complete = false;
  // The content was in the store before this upload (no chunks staged for it).
  bool already_stored = false;
  // Announced without a digest: its digests are its writers' (upload_file_sink.h).
  bool announced_without_digest = false;
  // A PutFile stream (on any server) holds the file: its lease has not run out.
  bool writing = false;
  // As stored: the record's version, and the writer's lease.
  int64_t version = 0;
  std::string writer;
  int64_t writer_until_micros = 0;
  // This server's writer holds chunks the store does not have yet: a PutFile stream
  // saves its file every few chunks, not after each (upload_file_sink.h). Refresh keeps
  // such a state while the store's version is the one it was saved as.
  bool ahead_of_store = false;
  // Digest state over bytes [0, hashed): valid for resuming when hashed == held; a
  // file another server wrote is digested again from its chunks when resumed here.
  UploadDigests digests;
  int64_t hashed = 0;
};

// One open upload as this server sees it. Immutable fields are set at creation; the
// rest is guarded by mu, and every change is written to the store under it.
class UploadSession {
 public:
  UploadSession(storage::UploadSessionRecord record, v1::BeginUploadRequest request,
                SessionStore* sessions);

  const std::string& id() const { return id_; }
  // Who began the upload, for reusing its chunks in the same principal's other uploads
  // ("" for a caller that may reuse everything).
  const std::string& owner() const { return owner_; }
  const v1::BeginUploadRequest& request() const { return request_; }
  // The upload's staging area in the store (shared by every server). NOT_FOUND if the
  // upload is gone.
  absl::StatusOr<std::shared_ptr<StagingArea>> Staging();

  absl::Mutex mu;
  std::map<std::string, UploadFileState> files ABSL_GUARDED_BY(mu);
  // Set once the upload's commit began, or it was aborted or expired: no more writes.
  bool closed ABSL_GUARDED_BY(mu) = false;
  // The prefix basename: the request's, or learned from the first writer that gave one
  // when the upload began without it. Empty until then.
  std::string basename ABSL_GUARDED_BY(mu);

  // Learns `writer_basename` (already validated) if the upload has no basename yet, and
  // stores it. INVALID_ARGUMENT if an earlier writer gave a different one.
  absl::Status LearnBasename(absl::string_view writer_basename)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Writes files[name] to the store as `writer` ("" for a caller writing no bytes) with
  // its lease until `lease_until_micros`, and takes the stored version. The store's
  // errors: FAILED_PRECONDITION (closed; another stream's lease runs), ABORTED (another
  // server changed the file meanwhile), NOT_FOUND (the upload is gone).
  absl::Status SaveFile(const std::string& name, absl::string_view writer,
                        int64_t lease_until_micros) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Marks the upload closed in the store: exactly one caller (on any server) succeeds;
  // FAILED_PRECONDITION for the others.
  absl::Status Close() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Takes the stored state (a fresh Load), keeping the digest states that still match
  // and the files this server is ahead on (a newer version, or ahead_of_store at the
  // stored version). Changes nothing once the upload is closed here (its files are
  // final).
  void Refresh(const UploadSessionState& state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // The state to store when the upload begins.
  UploadSessionState ToState() const ABSL_SHARED_LOCKS_REQUIRED(mu);

  // The API view of the upload. Requires mu held.
  v1::Upload ToProto() const ABSL_SHARED_LOCKS_REQUIRED(mu);

 private:
  const std::string id_;
  const std::string owner_;
  const v1::BeginUploadRequest request_;
  SessionStore* const sessions_;
  storage::UploadSessionRecord record_ ABSL_GUARDED_BY(mu);
  absl::Mutex staging_mu_;
  std::shared_ptr<StagingArea> staging_ ABSL_GUARDED_BY(staging_mu_);
};

// The open uploads of the store, with this server's cache of them.
class UploadManager {
 public:
  // `writer_lease`: how long a PutFile stream holds its file without a word (another
  // server's stream takes it over after that, e.g. once the first server died).
  UploadManager(Store* store, absl::Duration writer_lease);

  absl::Duration writer_lease() const { return writer_lease_; }
  // A new session of `owner` with a fresh id, not stored yet: fill its files, then
  // Start it.
  std::shared_ptr<UploadSession> New(const v1::BeginUploadRequest& request,
                                     std::string owner = "");
  // Stores the session: from now on every server sharing the store serves it.
  absl::Status Start(const std::shared_ptr<UploadSession>& session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(session->mu);
  // True if an open upload of `owner` (not "") holds the chunk (32-byte SHA-256).
  absl::StatusOr<bool> OwnerHoldsChunk(const std::string& owner,
                                       const std::string& sha256_raw);
  // The upload as stored now. NOT_FOUND if no such upload is open (never existed,
  // committed, aborted, expired).
  absl::StatusOr<std::shared_ptr<UploadSession>> Find(absl::string_view id);
  // Ends the upload (closing it here; its uncommitted chunks go); OK if it is gone.
  absl::Status Remove(absl::string_view id);
  // Ends and returns the uploads no server wrote since before `cutoff`, also those with
  // a file being written: a writer that sends nothing holds its upload no longer.
  std::vector<std::string> TakeIdle(absl::Time cutoff);
  // Open uploads in the store (on RADOS: of every server).
  size_t open_count();

 private:
  std::shared_ptr<UploadSession> Cached(const storage::UploadSessionRecord& record);
  void Forget(absl::string_view id);

  SessionStore& sessions_;
  const absl::Duration writer_lease_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<UploadSession>> cache_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_UPLOADS_H_
