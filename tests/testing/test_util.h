// Helpers shared by the tests: test data lookup, temp dirs, file I/O.
#ifndef MGREG_TESTS_TESTING_TEST_UTIL_H_
#define MGREG_TESTS_TESTING_TEST_UTIL_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace mgreg::testing {

// The directory of real TensorFlow files (MGREG_TESTDATA, else ../shared/testdata/tf),
// or "" if it does not exist.
std::string TestdataDir();

// Path of a file under TestdataDir(); "" if the test data is absent.
std::string TestdataPath(absl::string_view relative);

// Skips the current test with a visible message when the test data is absent.
#define MGREG_REQUIRE_TESTDATA()                                               \
  do {                                                                         \
    if (::mgreg::testing::TestdataDir().empty()) {                             \
      GTEST_SKIP() << "TensorFlow test data not found: set MGREG_TESTDATA to " \
                      "shared/testdata/tf";                                    \
    }                                                                          \
  } while (0)

// A fresh directory under the system temp dir, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Join(absl::string_view name) const;

 private:
  std::string path_;
};

std::string ReadFileOrDie(const std::string& path);
void WriteFileOrDie(const std::string& path, absl::string_view data);
// The raw SHA-256 of each `chunk_bytes`-byte chunk of `bytes`, in order (the last may be
// short): what a server cutting `bytes` into such chunks addresses them by.
std::vector<std::string> ChunkSha256s(absl::string_view bytes, int64_t chunk_bytes);
// Every regular file under `root`: its name relative to `root` ("/"-separated) -> its
// contents.
std::map<std::string, std::string> ReadTree(const std::string& root);

// Where the built binaries are (MGREG_BIN_DIR, set by CTest), e.g. for mgreg-server.
std::string BinDir();

}  // namespace mgreg::testing

#endif  // MGREG_TESTS_TESTING_TEST_UTIL_H_
