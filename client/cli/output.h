// How `mgreg` prints: JSON of API messages, sizes, times, a checkpoint, and progress on a
// terminal.
#ifndef MGREG_CLIENT_CLI_OUTPUT_H_
#define MGREG_CLIENT_CLI_OUTPUT_H_

#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "client/client.h"
#include "mgreg/v1/registry.pb.h"

namespace mgreg::cli {

// Indented JSON with every field, under its proto name (the --json output).
// INTERNAL if the message cannot be printed (protobuf fails only on an Any of unknown
// type, which no API message holds).
absl::StatusOr<std::string> Json(const google::protobuf::Message& m);
// One line of JSON (a stream of events, one per line).
absl::StatusOr<std::string> JsonLine(const google::protobuf::Message& m);
// "512 B", "1.5 MiB".
std::string HumanBytes(int64_t n);
// RFC 3339 in UTC, to the second.
std::string FormatTime(const google::protobuf::Timestamp& t);
// The `mgreg latest` block: step, basename, commit time, files, graph, metadata.
void PrintCheckpoint(const v1::Checkpoint& c, std::ostream& out);
// Progress on a terminal only: "\r<what> 42% 1.2 GiB / 2.9 GiB 310.0 MiB/s"; null
// (no progress) when stderr is not a terminal.
ProgressFn TerminalProgress(const std::string& what, std::ostream& err);

}  // namespace mgreg::cli

#endif  // MGREG_CLIENT_CLI_OUTPUT_H_
