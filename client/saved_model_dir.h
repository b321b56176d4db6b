// SavedModel version directories on the client's side: reading one to push (every file
// of the tree, nothing outside it), and TF Serving's base path it restores into
// (BASE/<version>/, each version staged under a hidden name and renamed into place whole,
// so that TF Serving's file-system poller never sees a half-written version).
//
// Every path written or removed here lies inside the base directory: the names a server
// answers are checked before anything is written (ValidateRelativePath), and only
// entries named by a decimal version number (what TF Serving loads) or by this file's
// own hidden staging names are ever removed.
//
// Thread safety: functions of the file system; callers serialize work on one base path.
#ifndef MGREG_CLIENT_SAVED_MODEL_DIR_H_
#define MGREG_CLIENT_SAVED_MODEL_DIR_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mgreg/v1/registry.pb.h"

namespace mgreg {

// True if `path` is a directory holding saved_model.pb or saved_model.pbtxt.
bool IsSavedModelDirectory(const std::string& path);

// The local path of each file of SavedModel step `checkpoint` below `root`, by file
// name (root/variables/variables.index, ...). Checks the whole answer before anything is
// written: INVALID_ARGUMENT, naming the server's answer, if a name is not a relative
// path inside `root` (absolute, "..", empty or "." segments, control characters), names
// a file twice, names a file and a directory alike ("assets" and "assets/a"), if the step
// is negative, or if neither saved_model.pb nor saved_model.pbtxt is among the files.
absl::StatusOr<std::map<std::string, std::string>> SavedModelFilePaths(
    const std::string& root, const v1::Checkpoint& checkpoint);

// The version directories of TF Serving's base path `base` (entries named by a decimal
// number, as TF Serving reads them), ascending. Other entries are not versions.
std::vector<int64_t> ListVersions(const std::string& base);

// True if base/<version> holds exactly `checkpoint`'s files, each with its size and
// SHA-256, and no other file.
bool VersionMatches(const std::string& base, const v1::Checkpoint& checkpoint);

// A hidden directory created in `base` to stage a version in (".mgreg-staging-<step>-*",
// which TF Serving ignores). Removed with everything in it when destroyed, unless
// Place() moved it into place. Move-only.
class StagedVersion {
 public:
  static absl::StatusOr<StagedVersion> Create(const std::string& base, int64_t version);
  StagedVersion(StagedVersion&& other) noexcept;
  StagedVersion& operator=(StagedVersion&&) = delete;
  ~StagedVersion();

  const std::string& path() const { return path_; }
  // Creates the parent directories of `file` (a path below path()).
  absl::Status MakeParents(const std::string& file);
  // fsyncs every directory of the staged tree, then makes it base/<version> in one
  // rename (an existing version is swapped out atomically, then removed), and fsyncs
  // `base`. Readers of `base` see the old version or the new one, never a mix.
  absl::Status Place();

 private:
  StagedVersion(std::string base, std::string path, int64_t version)
      : base_(std::move(base)), path_(std::move(path)), version_(version) {}
  std::string base_;
  std::string path_;  // empty once placed or moved from
  int64_t version_ = 0;
};

// Removes version directory base/<version>: renamed to a hidden name first (so it
// disappears whole for TF Serving), then deleted. A missing version is fine.
absl::Status RemoveVersion(const std::string& base, int64_t version);

}  // namespace mgreg

#endif  // MGREG_CLIENT_SAVED_MODEL_DIR_H_
