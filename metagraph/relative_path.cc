#include "metagraph/relative_path.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace mgreg {
namespace {

constexpr size_t kMaxSegmentBytes = 255;  // NAME_MAX on Linux file systems
// Long answers are cut in messages: the name is hostile input.
constexpr size_t kMaxQuotedBytes = 200;

std::string Quote(absl::string_view path) {
  if (path.size() <= kMaxQuotedBytes) return absl::StrCat("'", absl::CEscape(path), "'");
  return absl::StrCat("'", absl::CEscape(path.substr(0, kMaxQuotedBytes)), "...' (",
                      path.size(), " bytes)");
}

}  // namespace

absl::Status ValidateRelativePath(absl::string_view path, absl::string_view what,
                                  SubDirectories sub_directories) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", Quote(path), " ", why,
                     "; nothing was written (a name must be relative to the target "
                     "directory and stay inside it)"));
  };
  if (path.empty()) return bad("is empty");
  if (path.front() == '/') return bad("is absolute");
  for (char c : path) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return bad("contains a control character");
    }
  }
  if (sub_directories == SubDirectories::kForbidden && path.find('/') != path.npos) {
    return bad("contains '/' where this layout allows no sub-directory");
  }
  for (absl::string_view segment : absl::StrSplit(path, '/')) {
    if (segment.empty()) return bad("has an empty segment ('//' or a trailing '/')");
    if (segment == "." || segment == "..") {
      return bad(absl::StrCat("has a '", segment, "' segment"));
    }
    if (segment.size() > kMaxSegmentBytes) {
      return bad(absl::StrCat("has a segment of ", segment.size(),
                              " bytes, more than a file name can hold (255)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace mgreg
