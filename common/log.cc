#include "common/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mgreg {
namespace {

std::atomic<int64_t> lines_lost{0};

}  // namespace

void LogLine(LogLevel level, absl::string_view message) {
  const char* tag = level == LogLevel::kInfo      ? "I"
                    : level == LogLevel::kWarning ? "W"
                                                  : "E";
  std::string line = absl::StrCat(
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()), " ",
      tag, " ", message, "\n");
  // One write(2) per line keeps lines from interleaving between threads. A line stderr
  // does not take whole (EPIPE: whoever read the server's stderr is gone; a full disk)
  // is counted, as stderr is where a failure would be told.
  if (::write(STDERR_FILENO, line.data(), line.size()) !=
      static_cast<ssize_t>(line.size())) {
    lines_lost.fetch_add(1, std::memory_order_relaxed);
  }
}

int64_t LogLinesLost() { return lines_lost.load(std::memory_order_relaxed); }

}  // namespace mgreg
