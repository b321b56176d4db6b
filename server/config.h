// mgreg-server's configuration file (proto/mgreg/config/v1/config.proto, text format):
// parsed, checked and turned into ServerOptions. Every error names the file and the
// line at fault, so a misconfigured server fails at start saying what to fix.
#ifndef MGREG_SERVER_CONFIG_H_
#define MGREG_SERVER_CONFIG_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mgreg/config/v1/config.pb.h"
#include "server/server.h"

namespace mgreg {

// Parses `text` (named `filename` in messages) and checks every field: durations,
// limits, token hashes and roles, TLS files (read here, so a missing key fails now).
// Applies the result to `options` (fields left unset keep their value).
// Returns INVALID_ARGUMENT "FILE:LINE:COLUMN: what is wrong" for a syntax error, an
// unknown field or a bad value; NOT_FOUND naming the field for an unreadable file.
absl::Status ApplyServerConfigText(const std::string& text, const std::string& filename,
                                   ServerOptions* options);

// The same for the file at `path`. NOT_FOUND if it cannot be read.
absl::Status ApplyServerConfigFile(const std::string& path, ServerOptions* options);

// "plaintext|TLS|mTLS, N token(s)|no tokens": how clients are authenticated.
std::string DescribeSecurity(const ServerOptions& options);

// What mgreg-server --check-config prints for options that passed every check:
// "configuration OK (listen ..., <security>, data dir ...[, metrics ...], HTTP/2 BDP
// probing on|off...)".
std::string CheckConfigSummary(const ServerOptions& options);

// True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost).
bool IsLoopbackAddress(const std::string& host_port);

}  // namespace mgreg

#endif  // MGREG_SERVER_CONFIG_H_
