#include "client/cli/output.h"

#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mgreg::cli {
namespace {

absl::StatusOr<std::string> ToJson(
    const google::protobuf::Message& m,
    const google::protobuf::util::JsonPrintOptions& options) {
  std::string out;
  const auto status = google::protobuf::util::MessageToJsonString(m, &out, options);
  if (!status.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot print ", m.GetTypeName(), " as JSON: ", status.ToString()));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> Json(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  return ToJson(m, options);
}

absl::StatusOr<std::string> JsonLine(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  return ToJson(m, options);
}

std::string HumanBytes(int64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? absl::StrCat(n, " B") : absl::StrFormat("%.1f %s", v, units[u]);
}

std::string FormatTime(const google::protobuf::Timestamp& t) {
  return absl::FormatTime(
      "%Y-%m-%dT%H:%M:%SZ",
      absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos()),
      absl::UTCTimeZone());
}

void PrintCheckpoint(const v1::Checkpoint& c, std::ostream& out) {
  out << "model      " << c.model() << "\n"
      << "step       " << c.step() << "\n"
      << "kind       " << (c.kind() == v1::SAVED_MODEL ? "SavedModel" : "checkpoint")
      << "\n";
  if (!c.basename().empty()) out << "basename   " << c.basename() << "\n";
  out << "committed  " << FormatTime(c.commit_time()) << "\n"
      << "revision   " << c.revision() << "\n"
      << "size       " << HumanBytes(c.total_bytes()) << " in " << c.files_size()
      << " files\n";
  for (const v1::FileInfo& f : c.files()) {
    // The chunked SHA-256 (README: "Checking a restored file by hand"); sha256sum's
    // digest for a file stored before chunked digests.
    if (f.chunked_sha256().empty()) {
      out << absl::StrFormat("  %-22s %14d  sha256:%s\n", f.name(), f.size(), f.sha256());
    } else {
      out << absl::StrFormat("  %-22s %14d  chunked-sha256:%s\n", f.name(), f.size(),
                             f.chunked_sha256());
    }
  }
  if (!c.graph_sha256().empty()) out << "graph      sha256:" << c.graph_sha256() << "\n";
  for (const auto& [k, v] : c.metadata()) out << "metadata   " << k << "=" << v << "\n";
}

ProgressFn TerminalProgress(const std::string& what, std::ostream& err) {
  if (!::isatty(STDERR_FILENO)) return nullptr;
  const absl::Time start = absl::Now();
  auto last = std::make_shared<absl::Time>(absl::InfinitePast());
  return [what, start, last, &err](int64_t done, int64_t total) {
    const absl::Time now = absl::Now();
    if (done < total && now - *last < absl::Milliseconds(200)) return;
    *last = now;
    const double secs = absl::ToDoubleSeconds(now - start);
    const int pct = total > 0 ? static_cast<int>(100 * done / total) : 100;
    err << "\r" << what << " " << pct << "% " << HumanBytes(done) << " / "
        << HumanBytes(total);
    if (secs > 0.05) {
      err << " " << HumanBytes(static_cast<int64_t>(static_cast<double>(done) / secs))
          << "/s";
    }
    err << "   " << (done >= total ? "\n" : "") << std::flush;
  };
}

}  // namespace mgreg::cli
