// Store::Check's rules, written once: a backend feeds what it holds (one consistent
// view, Backend::Scan) into a ConsistencyCheck, which compares the records with each
// other and with what the backend serves from memory, and writes the report. Internal
// to storage/; not part of the contract.
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
#include "storage/backend.h"
#include "storage/store.h"

namespace mgreg::storage_internal {

// The RecordSink methods are documented in storage/backend.h. Events come ascending as
// stored. Not thread-safe: one check, one thread.
class ConsistencyCheck : public RecordSink {
 public:
  void SetRevision(int64_t revision) override;
  void AddModel(const storage::ModelRecord& model) override;
  void AddCheckpoint(absl::string_view key_model, int64_t key_step,
                     const storage::CheckpointRecord& record) override;
  void AddBlob(const storage::BlobRecord& blob, int64_t stored_refs) override;
  void AddOrphanBlobRefcount(absl::string_view sha256_hex, int64_t refs) override;
  void AddChunkRefcount(absl::string_view sha256_raw, int64_t refs,
                        uint32_t size) override;
  // Digest checked here.
  void AddChunkBytes(absl::string_view sha256_raw, absl::string_view bytes) override;
  void AddChunkSize(absl::string_view sha256_raw, uint64_t size) override;
  void AddHeld(absl::string_view sha256_raw) override;
  void AddStagedMark(absl::string_view sha256_raw) override;
  void AddEvent(const storage::Event& event) override;
  void AddServedHead(const Head& head) override;
  void AddServedModel(const storage::ModelRecord& model,
                      const std::optional<storage::CheckpointRecord>& latest) override;
  void AddProblem(std::string problem) override;

  CheckReport Finish();

 private:
  struct ChunkInfo {
    std::optional<int64_t> stored_refs;
    uint32_t recorded_size = 0;
    std::optional<uint64_t> bytes_size;
    int64_t slots = 0;
    std::optional<uint32_t> slot_size;
    bool held = false;
    bool staged_mark = false;
  };
  struct Served {
    storage::ModelRecord model;
    std::optional<storage::CheckpointRecord> latest;
  };
  void CheckServed(const CheckReport& report);
  std::map<std::string, storage::ModelRecord> models_;
  std::map<std::string, std::map<int64_t, storage::CheckpointRecord>> steps_;
  std::map<std::string, std::pair<storage::BlobRecord, int64_t>> blobs_;
  std::map<std::string, int64_t> orphan_blob_refs_;
  std::map<std::string, ChunkInfo> chunks_;
  std::vector<int64_t> event_revisions_;
  std::optional<Head> served_head_;
  std::map<std::string, Served> served_models_;
  int64_t revision_ = 0;
  int64_t files_ = 0;
  std::vector<std::string> problems_;
};

}  // namespace mgreg::storage_internal

#endif  // MGREG_STORAGE_CONSISTENCY_CHECK_H_
