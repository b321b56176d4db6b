// Steps committed straight into a Store, for the unit tests of server/core's pieces
// that need stored content or events without running uploads.
#ifndef MGREG_TESTS_TESTING_CORE_TEST_UTIL_H_
#define MGREG_TESTS_TESTING_CORE_TEST_UTIL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/sha256.h"
#include "mgreg/storage/records.pb.h"
#include "storage/store.h"

namespace mgreg::testing {

// The chunk reference of `data` (SHA-256 as 32 raw bytes).
inline storage::ChunkRef ChunkOf(absl::string_view data) {
  storage::ChunkRef ref;
  ref.set_sha256(Sha256Raw(data));
  ref.set_size(static_cast<uint32_t>(data.size()));
  return ref;
}

// Commits step `step` of `model` with one file "index" made of `chunks` (in order).
// Returns the committed record.
inline absl::StatusOr<storage::CheckpointRecord> CommitChunks(
    Store* store, const std::string& model, int64_t step,
    const std::vector<std::string>& chunks) {
  std::unique_ptr<StagingArea> staging = store->NewStagingArea();
  storage::BlobRecord blob;
  std::string whole;
  for (const std::string& c : chunks) {
    const storage::ChunkRef ref = ChunkOf(c);
    absl::Status put = staging->PutChunk(ref, c);
    if (!put.ok()) return put;
    *blob.add_chunks() = ref;
    whole += c;
  }
  blob.set_sha256(Sha256Hex(whole));
  blob.set_size(static_cast<int64_t>(whole.size()));
  CommitRequest commit;
  commit.record.set_model(model);
  commit.record.set_step(step);
  commit.record.set_basename("model.ckpt");
  storage::FileRecord* file = commit.record.add_files();
  file->set_name("index");
  file->set_size(static_cast<int64_t>(whole.size()));
  file->set_sha256(blob.sha256());
  commit.new_blobs.push_back(blob);
  absl::StatusOr<CommitResult> result = store->Commit(commit, staging.get());
  if (!result.ok()) return result.status();
  return result->record;
}

}  // namespace mgreg::testing

#endif  // MGREG_TESTS_TESTING_CORE_TEST_UTIL_H_
