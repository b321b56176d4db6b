// The local directory a client restores checkpoints into, as TensorFlow reads it: the
// files "<basename>-<step>.<name>" and the `checkpoint` state file listing them. Every
// path written or deleted here lies inside the directory: names the server answers are
// checked before anything is written (ValidateRelativePath), and state-file entries
// that point elsewhere (absolute paths outside the directory, `..`) are never read as
// the directory's own, so never deleted.
//
// Thread safety: functions of the file system; callers serialize work on one directory.
#ifndef MGREG_CLIENT_CHECKPOINT_DIR_H_
#define MGREG_CLIENT_CHECKPOINT_DIR_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "mgreg/v1/registry.pb.h"

namespace mgreg {

// The local path of each file of `checkpoint` restored into `dir`, by file name:
// dir/<basename>-<step>.<name>. Checks the whole answer before anything is written.
// INVALID_ARGUMENT, naming the server's answer, if the basename or a file name would
// make a path that is not a file directly inside `dir` (absolute, '/', "..", control
// characters, over 255 bytes), if a file name repeats, or if the step is negative.
absl::StatusOr<std::map<std::string, std::string>> RestoredFilePaths(
    const std::string& dir, const v1::Checkpoint& checkpoint);

// The entries of dir/checkpoint (TensorFlow's all_model_checkpoint_paths), split.
struct ListedCheckpoints {
  // Entries inside `dir` (relative, or absolute under it once symlinks are resolved)
  // whose .index still exists, as written in the state file, oldest first.
  std::vector<std::string> own;
  // Entries pointing outside `dir` (absolute elsewhere, or with a ".." segment):
  // neither deleted nor listed again.
  std::vector<std::string> foreign;
};
// Reads dir/checkpoint. A missing or unreadable state file lists nothing (it is
// replaced at the next switch).
ListedCheckpoints ReadListedCheckpoints(const std::string& dir);

// Deletes the files (.index, .meta, .data-NNNNN-of-MMMMM) of state-file entry `prefix`,
// only if it lies inside `dir` (checked again here); otherwise does nothing.
void RemoveCheckpointFiles(const std::string& dir, const std::string& prefix);

}  // namespace mgreg

#endif  // MGREG_CLIENT_CHECKPOINT_DIR_H_
