// Store::Check's rules, shared by every Store implementation: each one feeds what it
// holds (one consistent view) into a ConsistencyCheck, which compares the records with
// each other and writes the report. Internal to storage/; not part of the contract.
#ifndef MGREG_STORAGE_CONSISTENCY_CHECK_H_
#define MGREG_STORAGE_CONSISTENCY_CHECK_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "mgreg/storage/records.pb.h"
#include "storage/store.h"

namespace mgreg::storage_internal {

// Not thread-safe: one check, one thread.
class ConsistencyCheck {
 public:
  void AddModel(const storage::ModelRecord& model);
  // `key_model` and `key_step`: where the record is stored (its key), which must agree
  // with the record's own fields.
  void AddCheckpoint(absl::string_view key_model, int64_t key_step,
                     const storage::CheckpointRecord& record);
  void AddBlob(const storage::BlobRecord& blob, int64_t stored_refs);
  // A blob refcount without a blob record (the RocksDB store keeps them apart).
  void AddOrphanBlobRefcount(absl::string_view sha256_hex, int64_t refs);
  // The stored refcount of a chunk (blob slots listing it) and the size it records.
  void AddChunkRefcount(absl::string_view sha256_raw, int64_t refs, uint32_t size);
  // Stored chunk bytes (digest checked here).
  void AddChunkBytes(absl::string_view sha256_raw, absl::string_view bytes);
  // A chunk an open staging area holds.
  void AddHeld(absl::string_view sha256_raw);
  // Retained event revisions, ascending as stored, and the store's revision.
  void AddEvent(const storage::Event& event);
  void SetRevision(int64_t revision);
  // A problem the store found itself (a corrupt record, a stale cache).
  void AddProblem(std::string problem);

  CheckReport Finish();

 private:
  struct ChunkInfo {
    std::optional<int64_t> stored_refs;
    uint32_t recorded_size = 0;
    std::optional<uint64_t> bytes_size;
    int64_t slots = 0;
    std::optional<uint32_t> slot_size;
    bool held = false;
  };
  std::map<std::string, storage::ModelRecord> models_;
  std::map<std::string, std::map<int64_t, storage::CheckpointRecord>> steps_;
  std::map<std::string, std::pair<storage::BlobRecord, int64_t>> blobs_;
  std::map<std::string, int64_t> orphan_blob_refs_;
  std::map<std::string, ChunkInfo> chunks_;
  std::vector<int64_t> event_revisions_;
  int64_t revision_ = 0;
  int64_t files_ = 0;
  std::vector<std::string> problems_;
};

}  // namespace mgreg::storage_internal

#endif  // MGREG_STORAGE_CONSISTENCY_CHECK_H_
