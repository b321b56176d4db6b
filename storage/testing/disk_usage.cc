#include "storage/testing/disk_usage.h"

#include <sys/stat.h>

#include <filesystem>
#include <system_error>

namespace mgreg {

int64_t DiskBytes(const std::string& dir) {
  int64_t total = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    struct stat st;
    if (lstat(e.path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      total += static_cast<int64_t>(st.st_blocks) * 512;
    }
  }
  return total;
}

}  // namespace mgreg
