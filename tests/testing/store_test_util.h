// Builds checkpoints for Store tests the way the service does: files cut into chunks,
// new blobs staged and committed.
#ifndef MGREG_TESTS_TESTING_STORE_TEST_UTIL_H_
#define MGREG_TESTS_TESTING_STORE_TEST_UTIL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/store.h"

namespace mgreg::testing {

// A file's bytes cut into chunks of `chunk_size`.
struct TestFile {
  std::string name;
  std::string content;
  storage::FileRecord record;
  storage::BlobRecord blob;
  std::vector<std::string> chunks;  // bytes of each blob.chunks(i)
};

TestFile MakeFile(const std::string& name, const std::string& content,
                  size_t chunk_size = 1024);

storage::ChunkRef RefOf(const std::string& bytes);

// A request for (model, step) with these files (sorted by name by this function), and
// every file's blob listed as new.
CommitRequest MakeRequest(const std::string& model, int64_t step,
                          std::vector<TestFile> files, bool overwrite = false);

// What the service does: stages the chunks of the files whose blob the store lacks,
// lists those blobs as new, and commits.
absl::StatusOr<CommitResult> Push(Store& store, const std::string& model, int64_t step,
                                  const std::map<std::string, std::string>& files,
                                  bool overwrite = false, size_t chunk_size = 1024,
                                  bool force = false);

// The RocksDB store `options` open; null, after an ADD_FAILURE naming why, if it fails.
std::unique_ptr<Store> OpenRocksDbStoreOrFail(const RocksDbStoreOptions& options);
// The same with every option at its default but the path.
std::unique_ptr<Store> OpenRocksDbStoreOrFail(const std::string& path);

// `n` deterministic pseudo-random bytes from `seed`.
std::string Bytes(size_t n, uint64_t seed);

}  // namespace mgreg::testing

#endif  // MGREG_TESTS_TESTING_STORE_TEST_UTIL_H_
