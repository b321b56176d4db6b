// Relative paths a server names for files a client writes under a directory of its
// own (a restored checkpoint's "<basename>-<step>.index", later a SavedModel's
// "variables/variables.index" or "assets/vocab.txt"). A client checks every such name
// before it writes anything, so that no answer, hostile or buggy, makes it write
// outside the directory it was given. Pure string checks, thread-safe.
#ifndef MGREG_METAGRAPH_RELATIVE_PATH_H_
#define MGREG_METAGRAPH_RELATIVE_PATH_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace mgreg {

// Whether a layout allows a name to reach into sub-directories of the target directory.
enum class SubDirectories { kForbidden, kAllowed };

// OK if `path` is a relative, normalized path that stays inside the directory it is
// joined to: one or more segments separated by single '/', none of them empty, "." or
// "..", no leading or trailing '/', no NUL or other control character, each segment at
// most 255 bytes (NAME_MAX). With SubDirectories::kForbidden, also no '/' at all.
//
// Returns INVALID_ARGUMENT otherwise, naming `what` (e.g. "the server's file name for
// step 1000 of model 'resnet'") and the offending path, C-escaped.
absl::Status ValidateRelativePath(
    absl::string_view path, absl::string_view what,
    SubDirectories sub_directories = SubDirectories::kAllowed);

}  // namespace mgreg

#endif  // MGREG_METAGRAPH_RELATIVE_PATH_H_
