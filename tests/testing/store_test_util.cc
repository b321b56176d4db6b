#include "tests/testing/store_test_util.h"

#include <algorithm>

#include "common/sha256.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"

namespace mgreg::testing {

storage::ChunkRef RefOf(const std::string& bytes) {
  storage::ChunkRef ref;
  ref.set_sha256(Sha256Raw(bytes));
  ref.set_size(static_cast<uint32_t>(bytes.size()));
  return ref;
}

TestFile MakeFile(const std::string& name, const std::string& content,
                  size_t chunk_size) {
  TestFile f;
  f.name = name;
  f.content = content;
  const std::string hex = Sha256Hex(content);
  f.record.set_name(name);
  f.record.set_size(static_cast<int64_t>(content.size()));
  f.record.set_sha256(hex);
  f.blob.set_sha256(hex);
  f.blob.set_size(static_cast<int64_t>(content.size()));
  for (size_t off = 0; off < content.size(); off += chunk_size) {
    f.chunks.push_back(content.substr(off, chunk_size));
    *f.blob.add_chunks() = RefOf(f.chunks.back());
  }
  return f;
}

CommitRequest MakeRequest(const std::string& model, int64_t step,
                          std::vector<TestFile> files, bool overwrite) {
  std::sort(files.begin(), files.end(),
            [](const TestFile& a, const TestFile& b) { return a.name < b.name; });
  CommitRequest req;
  req.record.set_model(model);
  req.record.set_step(step);
  req.record.set_basename("model.ckpt");
  for (const TestFile& f : files) {
    *req.record.add_files() = f.record;
    if (f.name == "meta") req.record.set_graph_sha256(f.record.sha256());
    bool listed = false;
    for (const auto& b : req.new_blobs) listed = listed || b.sha256() == f.blob.sha256();
    if (!listed) req.new_blobs.push_back(f.blob);
  }
  req.overwrite = overwrite;
  return req;
}

absl::StatusOr<CommitResult> Push(Store& store, const std::string& model, int64_t step,
                                  const std::map<std::string, std::string>& files,
                                  bool overwrite, size_t chunk_size, bool force) {
  std::vector<TestFile> made;
  for (const auto& [name, content] : files)
    made.push_back(MakeFile(name, content, chunk_size));
  CommitRequest req = MakeRequest(model, step, made, overwrite);
  req.force = force;
  req.new_blobs.clear();
  auto area = store.NewStagingArea();
  for (const TestFile& f : made) {
    if (store.GetBlob(f.blob.sha256()).ok()) continue;
    bool listed = false;
    for (const auto& b : req.new_blobs) listed = listed || b.sha256() == f.blob.sha256();
    if (listed) continue;
    for (int i = 0; i < f.blob.chunks_size(); ++i) {
      ASSIGN_OR_RETURN(bool has, store.HasChunk(f.blob.chunks(i)));
      if (has && area->HoldExistingChunk(f.blob.chunks(i)).ok()) continue;
      RETURN_IF_ERROR(area->PutChunk(f.blob.chunks(i), f.chunks[i]));
    }
    req.new_blobs.push_back(f.blob);
  }
  return store.Commit(req, area.get());
}

std::string Bytes(size_t n, uint64_t seed) {
  std::string out(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<char>(x);
  }
  return out;
}

std::unique_ptr<Store> OpenRocksDbStoreOrFail(const RocksDbStoreOptions& options) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenRocksDbStore(options);
  if (!store.ok()) {
    ADD_FAILURE() << "opening the RocksDB store at " << options.path << ": "
                  << store.status();
    return nullptr;
  }
  return std::move(*store);
}

std::unique_ptr<Store> OpenRocksDbStoreOrFail(const std::string& path) {
  RocksDbStoreOptions options;
  options.path = path;
  return OpenRocksDbStoreOrFail(options);
}

}  // namespace mgreg::testing
