// The BeginUpload manifest of a checkpoint on disk, for tests that drive the raw upload
// API (BeginUpload, PutFile streams, CommitUpload) instead of Client::Push.
#ifndef MGREG_TESTS_TESTING_UPLOAD_MANIFEST_H_
#define MGREG_TESTS_TESTING_UPLOAD_MANIFEST_H_

#include <cstdint>
#include <string>

#include "client/client.h"
#include "common/file_digest.h"
#include "gtest/gtest.h"
#include "mgreg/v1/registry.pb.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {

// (model, step) with basename "model.ckpt" and every file of the checkpoint at `prefix`
// with its size and SHA-256. A checkpoint that cannot be read fails the test.
inline v1::BeginUploadRequest UploadManifest(const std::string& model, int64_t step,
                                             const std::string& prefix) {
  v1::BeginUploadRequest begin;
  begin.set_model(model);
  begin.set_step(step);
  begin.set_basename("model.ckpt");
  auto local = FindLocalCheckpoint(prefix);
  EXPECT_TRUE(local.ok()) << local.status();
  if (!local.ok()) return begin;
  for (const auto& [name, path] : local->files) {
    const std::string bytes = ReadFileOrDie(path);
    v1::FileInfo* f = begin.add_files();
    f->set_name(name);
    f->set_size(static_cast<int64_t>(bytes.size()));
    f->set_chunked_sha256(ChunkedSha256Hex(bytes));  // what current clients send
  }
  return begin;
}

}  // namespace mgreg::testing

#endif  // MGREG_TESTS_TESTING_UPLOAD_MANIFEST_H_
