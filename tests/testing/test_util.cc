#include "tests/testing/test_util.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"

namespace mgreg::testing {
namespace fs = std::filesystem;

std::string TestdataDir() {
  const char* env = std::getenv("MGREG_TESTDATA");
  std::string dir = env != nullptr && *env != '\0' ? env : "../shared/testdata/tf";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return "";
  return fs::absolute(dir).string();
}

std::string TestdataPath(absl::string_view relative) {
  std::string dir = TestdataDir();
  if (dir.empty()) return "";
  return absl::StrCat(dir, "/", relative);
}

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "mgreg-test-XXXXXX").string();
  char* made = ::mkdtemp(tmpl.data());
  if (made == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
    std::abort();
  }
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string TempDir::Join(absl::string_view name) const {
  return absl::StrCat(path_, "/", name);
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot read " << path;
    std::abort();
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> ChunkSha256s(absl::string_view bytes, int64_t chunk_bytes) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos < bytes.size(); pos += static_cast<size_t>(chunk_bytes)) {
    out.push_back(Sha256Raw(bytes.substr(pos, static_cast<size_t>(chunk_bytes))));
  }
  return out;
}

std::map<std::string, std::string> ReadTree(const std::string& root) {
  namespace fs = std::filesystem;
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) {
      out[fs::relative(e.path(), root).generic_string()] =
          ReadFileOrDie(e.path().string());
    }
  }
  return out;
}

void WriteFileOrDie(const std::string& path, absl::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) {
    ADD_FAILURE() << "cannot write " << path;
    std::abort();
  }
}

std::string BinDir() {
  const char* env = std::getenv("MGREG_BIN_DIR");
  return env != nullptr ? env : ".";
}

}  // namespace mgreg::testing
