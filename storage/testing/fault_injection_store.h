// Fault injection for tests, as leveldb's fault-injection env does it: wrap the
// interface and fail chosen operations on demand.
//
//  - FaultInjectionStore wraps any Store and fails chosen operations (commit, delete,
//    chunk writes, reads, ...) with a given status, before or after the wrapped call
//    (after: the operation happened but its caller sees it fail, as when a reply is
//    lost).
//  - FaultInjectionFileSystem is a file system for RocksDB (pass env() in
//    OpenRocksDbStore(options, env)) that fails appends with "no space" once a byte
//    budget is spent, and syncs and reads of table and blob files with an I/O error on
//    demand: a full or failing disk without mount privileges.
//
// Thread safety: every method may be called concurrently with the store's.
#ifndef MGREG_STORAGE_TESTING_FAULT_INJECTION_STORE_H_
#define MGREG_STORAGE_TESTING_FAULT_INJECTION_STORE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "storage/session_store.h"
#include "storage/store.h"

namespace rocksdb {
class Env;
}  // namespace rocksdb

namespace mgreg {

// The operations FaultInjectionStore can fail.
enum class FaultOp {
  kCommit,
  kDelete,    // DeleteCheckpoint and ApplyRetention
  kPutChunk,  // StagingArea::PutChunk and HoldExistingChunk
  kReadChunk,
  kReadRecord,     // GetCheckpoint, GetLatest, VisitLatest, ListModels, ListCheckpoints,
                   // GetBlob, GetModel
  kModelSettings,  // SetAlias, RemoveAlias, SetPinned, SetRetention
};

class FaultInjectionStore : public Store {
 public:
  explicit FaultInjectionStore(std::unique_ptr<Store> base);
  ~FaultInjectionStore() override;

  // The next `count` calls of `op` (count < 0: every call until Clear) fail with
  // `status` (not OK). With `after`, the wrapped call runs first and its result is
  // replaced by `status`.
  void FailNext(FaultOp op, absl::Status status, int count = 1, bool after = false);
  void Clear(FaultOp op);
  void ClearAll();
  // How many calls failed because of an injected fault.
  int64_t faults_injected() const { return injected_.load(); }
  Store* base() { return base_.get(); }

  std::unique_ptr<StagingArea> NewStagingArea() override;
  // In this process's memory, over this store's staging areas (so faults apply).
  SessionStore& sessions() override { return *sessions_; }
  absl::StatusOr<CommitResult> Commit(const CommitRequest& request,
                                      StagingArea* staging) override;
  absl::StatusOr<int64_t> DeleteCheckpoint(absl::string_view model,
                                           int64_t step) override;
  absl::StatusOr<storage::CheckpointRecord> GetCheckpoint(absl::string_view model,
                                                          int64_t step) override;
  absl::StatusOr<storage::CheckpointRecord> GetLatest(absl::string_view model) override;
  absl::Status VisitLatest(absl::string_view model,
                           absl::FunctionRef<void(const storage::CheckpointRecord&,
                                                  const storage::ModelRecord&)>
                               visit) override;
  absl::StatusOr<std::vector<storage::ModelRecord>> ListModels(
      absl::string_view start_after, int limit) override;
  absl::StatusOr<std::vector<storage::CheckpointRecord>> ListCheckpoints(
      absl::string_view model, std::optional<int64_t> start_after, int limit) override;
  absl::StatusOr<storage::BlobRecord> GetBlob(absl::string_view sha256_hex) override;
  absl::StatusOr<std::string> ReadChunk(const storage::ChunkRef& ref) override;
  absl::StatusOr<bool> HasChunk(const storage::ChunkRef& ref) override;
  absl::StatusOr<StoreStats> GetStats() override;
  absl::StatusOr<CheckReport> Check() override;
  absl::Status Backup(const std::string& dir) override;
  absl::StatusOr<EventPage> ReadEvents(int64_t after_revision, int limit) override;
  void SetEventListener(std::function<void(const storage::Event&)> listener) override;
  absl::StatusOr<int64_t> SetAlias(absl::string_view model, absl::string_view alias,
                                   int64_t step) override;
  absl::StatusOr<int64_t> RemoveAlias(absl::string_view model,
                                      absl::string_view alias) override;
  absl::Status SetPinned(absl::string_view model, int64_t step, bool pinned) override;
  absl::StatusOr<storage::ModelRecord> GetModel(absl::string_view model) override;
  absl::Status SetRetention(absl::string_view model,
                            const storage::RetentionPolicy& policy) override;
  absl::StatusOr<int64_t> ApplyRetention(absl::string_view model,
                                         const std::vector<int64_t>& delete_steps,
                                         const std::vector<int64_t>& preserve_steps,
                                         int64_t last_preserved_micros) override;

  // What one call of `op` should do: OK (no fault), or the status to fail with and
  // whether to fail after running the call. Counts the fault. Public for the staging
  // area wrapper.
  struct Decision {
    absl::Status status;
    bool after = false;
  };
  Decision Decide(FaultOp op);

 private:
  // Runs `call` under the decision for `op`.
  template <typename T, typename Call>
  T Run(FaultOp op, Call call);

  struct Fault {
    absl::Status status;
    int remaining = 0;  // < 0: forever
    bool after = false;
  };
  const std::unique_ptr<Store> base_;
  absl::Mutex mu_;
  std::map<FaultOp, Fault> faults_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> injected_{0};
  std::unique_ptr<SessionStore> sessions_;
};

// A RocksDB file system (over the default one) that fails writes, syncs and reads on
// demand.
class FaultInjectionFileSystem {
 public:
  FaultInjectionFileSystem();
  ~FaultInjectionFileSystem();

  // The Env to open the store on (OpenRocksDbStore(options, env), in
  // storage/rocksdb/rocksdb_open.h); it stays valid after this object.
  std::shared_ptr<rocksdb::Env> env();

  // From now on, appends beyond `bytes` more bytes (in total, over every file) fail
  // with IOStatus::NoSpace, as a full disk does. bytes < 0: no budget (the default).
  void SetWriteBudget(int64_t bytes);
  // Syncs (Sync, Fsync, RangeSync) fail with an I/O error while set.
  void FailSyncs(bool fail);
  // Reads of random-access files (tables and blob files: what Get and iterators read
  // below the memtable and caches) fail with an I/O error while set.
  void FailReads(bool fail);
  int64_t faults_injected() const;
  int64_t bytes_appended() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
  std::shared_ptr<rocksdb::Env> env_;
};

}  // namespace mgreg

#endif  // MGREG_STORAGE_TESTING_FAULT_INJECTION_STORE_H_
