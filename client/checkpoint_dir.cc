#include "client/checkpoint_dir.h"

#include <filesystem>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/local_file.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "metagraph/checkpoint_name.h"
#include "metagraph/checkpoint_state.h"
#include "metagraph/relative_path.h"

namespace mgreg {
namespace fs = std::filesystem;
namespace {

// True if `inner` is `outer` or below it (both canonical).
bool IsWithin(const fs::path& outer, const fs::path& inner) {
  auto o = outer.begin();
  auto i = inner.begin();
  for (; o != outer.end(); ++o, ++i) {
    if (i == inner.end() || *o != *i) return false;
  }
  return true;
}

// Where state-file entry `entry` points, if that is inside `dir`: its directory with
// symlinks resolved, joined with its last segment. nullopt for entries with a ".."
// segment or pointing elsewhere.
std::optional<fs::path> ResolveInside(const std::string& dir, const std::string& entry) {
  if (entry.empty()) return std::nullopt;
  for (absl::string_view segment : absl::StrSplit(entry, '/')) {
    if (segment == "..") return std::nullopt;
  }
  fs::path path(entry);
  if (path.is_relative()) path = fs::path(dir) / path;
  path = path.lexically_normal();
  if (!path.has_filename()) return std::nullopt;
  std::error_code ec;
  const fs::path canonical_dir = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  if (ec) return std::nullopt;
  const fs::path parent = fs::weakly_canonical(fs::absolute(path.parent_path(), ec), ec);
  if (ec || !IsWithin(canonical_dir, parent)) return std::nullopt;
  return parent / path.filename();
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> RestoredFilePaths(
    const std::string& dir, const v1::Checkpoint& checkpoint) {
  const std::string whose =
      absl::StrCat("step ", checkpoint.step(), " of model '", checkpoint.model(), "'");
  if (checkpoint.step() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the server answered a negative step (", checkpoint.step(),
                     ") for model '", checkpoint.model(), "'; nothing was written"));
  }
  RETURN_IF_ERROR(ValidateRelativePath(checkpoint.basename(),
                                       absl::StrCat("the server's basename for ", whose),
                                       SubDirectories::kForbidden));
  const std::string prefix =
      CheckpointPrefixName(checkpoint.basename(), checkpoint.step());
  std::map<std::string, std::string> out;
  for (const v1::FileInfo& file : checkpoint.files()) {
    RETURN_IF_ERROR(ValidateRelativePath(
        file.name(), absl::StrCat("the server's file name for ", whose),
        SubDirectories::kForbidden));
    const std::string name = absl::StrCat(prefix, ".", file.name());
    RETURN_IF_ERROR(
        ValidateRelativePath(name, absl::StrCat("the restored file name for ", whose),
                             SubDirectories::kForbidden));
    if (!out.emplace(file.name(), (fs::path(dir) / name).string()).second) {
      return absl::InvalidArgumentError(absl::StrCat("the server's answer for ", whose,
                                                     " names file '", file.name(),
                                                     "' twice; nothing was written"));
    }
  }
  return out;
}

ListedCheckpoints ReadListedCheckpoints(const std::string& dir) {
  ListedCheckpoints out;
  const std::string state_path = (fs::path(dir) / "checkpoint").string();
  std::error_code ec;
  if (!fs::exists(state_path, ec)) return out;
  absl::StatusOr<std::string> text = ReadWholeFile(state_path);
  if (!text.ok()) return out;
  absl::StatusOr<tensorflow::CheckpointState> state = ParseCheckpointState(*text);
  if (!state.ok()) return out;  // an unreadable state file is replaced
  for (const std::string& p : state->all_model_checkpoint_paths()) {
    std::optional<fs::path> path = ResolveInside(dir, p);
    if (!path.has_value()) {
      out.foreign.push_back(p);
    } else if (fs::exists(path->string() + ".index", ec)) {
      out.own.push_back(p);
    }
  }
  return out;
}

void RemoveCheckpointFiles(const std::string& dir, const std::string& prefix) {
  std::optional<fs::path> base = ResolveInside(dir, prefix);
  if (!base.has_value()) return;
  const std::string stem = base->filename().string() + ".";
  std::error_code ec;
  for (const fs::directory_entry& entry :
       fs::directory_iterator(base->parent_path(), ec)) {
    const std::string name = entry.path().filename().string();
    if (!absl::StartsWith(name, stem)) continue;
    const std::string suffix = name.substr(stem.size());
    if (suffix == "index" || suffix == "meta" ||
        (absl::StartsWith(suffix, "data-") && ValidateFileName(suffix).ok())) {
      fs::remove(entry.path(), ec);
    }
  }
}

}  // namespace mgreg
