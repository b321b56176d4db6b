// Minimal leveled logging to stderr, used only at the edges (main, RPC adapter, CLI).
#ifndef MGREG_COMMON_LOG_H_
#define MGREG_COMMON_LOG_H_

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace mgreg {

enum class LogLevel { kInfo, kWarning, kError };

// Writes one line "<time> <level> <message>" to stderr atomically.
void LogLine(LogLevel level, absl::string_view message);

// How many lines LogLine could not write whole since the process started (stderr a pipe
// whose reader is gone, a full disk): mgreg-server exports it as
// mgreg_log_lines_lost_total.
int64_t LogLinesLost();

template <typename... Args>
void LogInfo(const Args&... args) {
  LogLine(LogLevel::kInfo, absl::StrCat(args...));
}
template <typename... Args>
void LogWarning(const Args&... args) {
  LogLine(LogLevel::kWarning, absl::StrCat(args...));
}
template <typename... Args>
void LogError(const Args&... args) {
  LogLine(LogLevel::kError, absl::StrCat(args...));
}

}  // namespace mgreg

#endif  // MGREG_COMMON_LOG_H_
