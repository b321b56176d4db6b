#include "client/saved_model_dir.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/client.h"
#include "client/local_file.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "metagraph/relative_path.h"
#include "metagraph/saved_model.h"

namespace mgreg {
namespace fs = std::filesystem;
namespace {

// The version a directory name stands for: all decimal digits ("00000123" -> 123).
std::optional<int64_t> VersionOfName(const std::string& name) {
  if (name.empty() || name.size() > 18) return std::nullopt;
  for (char c : name) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  int64_t v = 0;
  if (!absl::SimpleAtoi(name, &v)) return std::nullopt;
  return v;
}

// True if `inner` is `outer` or below it (both canonical).
bool IsWithin(const fs::path& outer, const fs::path& inner) {
  auto o = outer.begin();
  auto i = inner.begin();
  for (; o != outer.end(); ++o, ++i) {
    if (i == inner.end() || *o != *i) return false;
  }
  return true;
}

absl::Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot open directory '", dir, "' to sync it: ", std::strerror(errno)));
  }
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot sync directory '", dir, "': ", std::strerror(err)));
  }
  return absl::OkStatus();
}

std::string VersionPath(const std::string& base, int64_t version) {
  return (fs::path(base) / std::to_string(version)).string();
}

// A fresh hidden directory in `base` ("<base>/.mgreg-<what>-<version>-XXXXXX").
absl::StatusOr<std::string> MakeHiddenDirectory(const std::string& base, const char* what,
                                                int64_t version) {
  std::string path =
      (fs::path(base) / absl::StrCat(".mgreg-", what, "-", version, "-XXXXXX")).string();
  if (::mkdtemp(path.data()) == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create a directory in '", base, "': ", std::strerror(errno),
                     "; choose another directory or fix its permissions"));
  }
  return path;
}

}  // namespace

bool IsSavedModelDirectory(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return false;
  return fs::exists(fs::path(path) / kSavedModelPb, ec) ||
         fs::exists(fs::path(path) / kSavedModelPbtxt, ec);
}

absl::StatusOr<LocalSavedModel> FindLocalSavedModel(const std::string& dir) {
  LocalSavedModel out;
  fs::path root = fs::path(dir).lexically_normal();
  if (!root.has_filename() && root.has_parent_path()) root = root.parent_path();
  out.directory = root.string();
  if (!IsSavedModelDirectory(out.directory)) {
    return absl::NotFoundError(absl::StrCat(
        "no SavedModel at '", dir, "': neither '", (root / kSavedModelPb).string(),
        "' nor '", (root / kSavedModelPbtxt).string(), "' exists"));
  }
  out.version = VersionOfName(root.filename().string());
  std::error_code ec;
  const fs::path canonical_root = fs::canonical(root, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot resolve '", dir, "': ", ec.message()));
  }
  fs::recursive_directory_iterator it(root, ec), end;
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot list '", dir, "': ", ec.message()));
  }
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    const fs::path& path = it->path();
    const std::string name = path.lexically_relative(root).generic_string();
    RETURN_IF_ERROR(ValidateRelativePath(
        name, absl::StrCat("the file name in SavedModel '", dir, "'")));
    fs::file_status status = it->symlink_status(ec);
    if (ec) break;
    if (fs::is_symlink(status)) {
      const fs::path target = fs::canonical(path, ec);
      if (ec || !IsWithin(canonical_root, target)) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", path.string(), "' is a symbolic link to '",
                         ec ? fs::read_symlink(path, ec).string() : target.string(),
                         "', outside the SavedModel directory '", dir,
                         "'; copy the file into the directory instead of linking to it"));
      }
      status = fs::status(path, ec);
      if (fs::is_directory(status)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "'", path.string(),
            "' is a symbolic link to a directory; replace it by the "
            "directory itself (a SavedModel step stores files by their paths)"));
      }
    }
    if (fs::is_directory(status)) continue;
    if (!fs::is_regular_file(status)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", path.string(),
                       "' is neither a file nor a directory (a socket, fifo or "
                       "device); remove it from the SavedModel directory"));
    }
    out.files[name] = path.string();
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot list '", dir, "': ", ec.message()));
  }
  std::vector<std::string> names;
  for (const auto& [name, unused] : out.files) names.push_back(name);
  RETURN_IF_ERROR(ValidateSavedModelNames(names, absl::StatusCode::kNotFound));
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> SavedModelFilePaths(
    const std::string& root, const v1::Checkpoint& checkpoint) {
  const std::string whose =
      absl::StrCat("step ", checkpoint.step(), " of model '", checkpoint.model(), "'");
  if (checkpoint.step() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the server answered a negative step (", checkpoint.step(),
                     ") for model '", checkpoint.model(), "'; nothing was written"));
  }
  std::map<std::string, std::string> out;
  std::vector<std::string> names;
  for (const v1::FileInfo& file : checkpoint.files()) {
    RETURN_IF_ERROR(ValidateRelativePath(
        file.name(), absl::StrCat("the server's file name for ", whose)));
    if (!out.emplace(file.name(), (fs::path(root) / file.name()).string()).second) {
      return absl::InvalidArgumentError(absl::StrCat("the server's answer for ", whose,
                                                     " names file '", file.name(),
                                                     "' twice; nothing was written"));
    }
    names.push_back(file.name());
  }
  // A name that is also another's directory ("assets" and "assets/a") cannot be both.
  for (const std::string& name : names) {
    auto next = out.upper_bound(name);
    if (next != out.end() && next->first.size() > name.size() &&
        next->first.compare(0, name.size(), name) == 0 &&
        next->first[name.size()] == '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("the server's answer for ", whose, " names '", name,
                       "' as a file and as the "
                       "directory of '",
                       next->first, "'; nothing was written"));
    }
  }
  if (!SavedModelProtoName(names).has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the server's answer for ", whose, " holds neither ", kSavedModelPb,
                     " nor ", kSavedModelPbtxt, "; nothing was written"));
  }
  return out;
}

std::vector<int64_t> ListVersions(const std::string& base) {
  std::vector<int64_t> out;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(base, ec)) {
    std::optional<int64_t> v = VersionOfName(e.path().filename().string());
    if (v.has_value() && e.is_directory(ec) && !e.is_symlink(ec)) out.push_back(*v);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool VersionMatches(const std::string& base, const v1::Checkpoint& checkpoint) {
  const std::string root = VersionPath(base, checkpoint.step());
  absl::StatusOr<std::map<std::string, std::string>> paths =
      SavedModelFilePaths(root, checkpoint);
  if (!paths.ok()) return false;
  for (const v1::FileInfo& f : checkpoint.files()) {
    if (!FileMatches(paths->at(f.name()), f.size(),
                     ExpectedDigestOf(f.sha256(), f.chunked_sha256()))) {
      return false;
    }
  }
  size_t files = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (!it->is_directory(ec)) ++files;
  }
  return !ec && files == static_cast<size_t>(checkpoint.files_size());
}

absl::StatusOr<StagedVersion> StagedVersion::Create(const std::string& base,
                                                    int64_t version) {
  ASSIGN_OR_RETURN(std::string path, MakeHiddenDirectory(base, "staging", version));
  ::chmod(path.c_str(), 0755);  // mkdtemp's 0700 would hide the version from TF Serving
  return StagedVersion(base, std::move(path), version);
}

StagedVersion::StagedVersion(StagedVersion&& other) noexcept
    : base_(std::move(other.base_)),
      path_(std::exchange(other.path_, std::string())),
      version_(other.version_) {}

StagedVersion::~StagedVersion() {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

absl::Status StagedVersion::MakeParents(const std::string& file) {
  const fs::path parent = fs::path(file).parent_path();
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create directory '", parent.string(), "': ", ec.message()));
  }
  return absl::OkStatus();
}

absl::Status StagedVersion::Place() {
  // Directories below first, the staging directory itself last.
  std::vector<std::string> dirs;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(path_, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_directory(ec)) dirs.push_back(it->path().string());
  }
  std::sort(dirs.rbegin(), dirs.rend());
  dirs.push_back(path_);
  for (const std::string& d : dirs) RETURN_IF_ERROR(SyncDirectory(d));
  const std::string target = VersionPath(base_, version_);
  if (::rename(path_.c_str(), target.c_str()) != 0) {
    if (errno != ENOTEMPTY && errno != EEXIST) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot rename '", path_, "' to '", target, "': ", std::strerror(errno)));
    }
    // The version exists with other content: swap the two in one step, then remove the
    // old one (now under the staging name).
    if (::renameat2(AT_FDCWD, path_.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) !=
        0) {
      if (errno != EINVAL && errno != ENOSYS) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cannot swap '", path_, "' with '", target, "': ", std::strerror(errno)));
      }
      // No atomic exchange on this file system: the old version leaves first.
      RETURN_IF_ERROR(RemoveVersion(base_, version_));
      if (::rename(path_.c_str(), target.c_str()) != 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cannot rename '", path_, "' to '", target, "': ", std::strerror(errno)));
      }
      path_.clear();
    }
  } else {
    path_.clear();
  }
  // After an exchange path_ names the old version: the destructor removes it.
  RETURN_IF_ERROR(SyncDirectory(base_));
  if (!path_.empty()) {
    fs::remove_all(path_, ec);
    path_.clear();
  }
  return absl::OkStatus();
}

absl::Status RemoveVersion(const std::string& base, int64_t version) {
  const std::string path = VersionPath(base, version);
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec))) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::string hidden, MakeHiddenDirectory(base, "removing", version));
  // Renaming onto the fresh (empty) hidden directory replaces it.
  if (::rename(path.c_str(), hidden.c_str()) != 0) {
    const int err = errno;
    fs::remove(hidden, ec);
    return absl::FailedPreconditionError(absl::StrCat("cannot remove version directory '",
                                                      path, "': ", std::strerror(err)));
  }
  SyncDirectory(base).IgnoreError();  // the version is gone either way
  fs::remove_all(hidden, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("version ", version, " left '", base, "' but its files in '", hidden,
                     "' could not all be deleted: ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace mgreg
