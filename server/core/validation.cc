#include "server/core/validation.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/names.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "metagraph/checkpoint_name.h"
#include "metagraph/relative_path.h"
#include "metagraph/saved_model.h"
#include "server/core/api_errors.h"
#include "server/core/api_translation.h"

namespace mgreg {
namespace {

// The longest file name a checkpoint can hold ("data-NNNNN-of-MMMMM").
constexpr size_t kLongestFileName = 19;
// What a restore adds to a file's name while writing it: the client writes
// ".<name>.mgreg-XXXXXX" and renames it into place (client/local_file.cc).
constexpr size_t kRestoreTempDecoration = 14;
// NAME_MAX of Linux file systems (ext4, xfs, btrfs, tmpfs).
constexpr size_t kMaxFileNameBytes = 255;

}  // namespace

absl::Status ValidateBasename(absl::string_view basename) {
  if (basename.empty()) {
    return absl::InvalidArgumentError(
        "basename is empty; give the checkpoint prefix's basename without its step, "
        "e.g. 'model.ckpt'");
  }
  if (basename.size() > 255 || basename == "." || basename == ".." ||
      basename == "checkpoint") {
    return absl::InvalidArgumentError(
        absl::StrCat("basename '", absl::CEscape(basename), "' cannot name a file"));
  }
  for (char c : basename) {
    if (c == '/' || c == '\0' || static_cast<unsigned char>(c) < 0x20) {
      return absl::InvalidArgumentError(absl::StrCat(
          "basename '", absl::CEscape(basename),
          "' contains '/' or a control character; give only the file name part, e.g. "
          "'model.ckpt'"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRestoredNames(absl::string_view basename, int64_t step) {
  const size_t length = basename.size() + 1 + absl::StrCat(step).size() + 1 +
                        kLongestFileName + kRestoreTempDecoration;
  if (length > kMaxFileNameBytes) {
    return api_errors::RestoredNameTooLong(basename, step, "data-NNNNN-of-MMMMM", length,
                                           kMaxFileNameBytes);
  }
  return absl::OkStatus();
}

// User metadata stays small: it is in every listing of the model's steps.
absl::Status ValidateMetadata(const google::protobuf::Map<std::string, std::string>& m) {
  constexpr int64_t kMaxEntries = 64, kMaxKeyBytes = 256, kMaxBytes = 64 << 10;
  int64_t bytes = 0;
  bool key_too_long = false;
  for (const auto& [key, value] : m) {
    bytes += static_cast<int64_t>(key.size() + value.size());
    key_too_long = key_too_long || static_cast<int64_t>(key.size()) > kMaxKeyBytes;
  }
  if (static_cast<int64_t>(m.size()) > kMaxEntries || bytes > kMaxBytes || key_too_long) {
    return api_errors::MetadataTooLarge(static_cast<int64_t>(m.size()), bytes);
  }
  return absl::OkStatus();
}

absl::Status ValidateStepKind(const v1::BeginUploadRequest& request) {
  if (request.kind() != v1::STEP_KIND_UNSPECIFIED && request.kind() != v1::CHECKPOINT &&
      request.kind() != v1::SAVED_MODEL) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step kind ", request.kind(), " is unknown; use CHECKPOINT or SAVED_MODEL"));
  }
  if (request.kind() == v1::SAVED_MODEL && !request.basename().empty()) {
    return absl::InvalidArgumentError(
        "a SavedModel upload has no basename (its files are named by their paths in the "
        "version directory); leave basename empty");
  }
  return absl::OkStatus();
}

absl::Status CheckUploadSizes(const std::vector<v1::FileInfo>& files,
                              int64_t max_meta_bytes, int64_t max_upload_bytes,
                              bool learned) {
  int64_t total = 0;
  for (const v1::FileInfo& f : files) {
    if (f.size() < 0) continue;  // ValidateFiles names it
    if (__builtin_add_overflow(total, f.size(), &total)) {
      return api_errors::UploadSizesOverflow();
    }
    const bool graph_file =
        f.name() == "meta" || f.name() == kSavedModelPb || f.name() == kSavedModelPbtxt;
    if (graph_file && max_meta_bytes > 0 && f.size() > max_meta_bytes) {
      return api_errors::MetaTooLarge(f.size(), max_meta_bytes);
    }
  }
  if (max_upload_bytes > 0 && total > max_upload_bytes) {
    return api_errors::UploadTooLarge(total, max_upload_bytes, learned);
  }
  return absl::OkStatus();
}

absl::Status ValidateDigest(absl::string_view file, absl::string_view field,
                            const std::string& digest, int64_t size) {
  if (!IsSha256Hex(digest)) {
    return absl::InvalidArgumentError(
        absl::StrCat("file '", file, "': ", field, " ", api_errors::Quote(digest),
                     " is not 64 lower-case hex characters"));
  }
  if (size == 0 && digest != Sha256Hex("")) {
    return absl::InvalidArgumentError(absl::StrCat("file '", file, "' is empty but its ",
                                                   field, " is not that of no bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateFileDigests(const v1::FileInfo& f) {
  if (!f.sha256().empty()) {
    RETURN_IF_ERROR(ValidateDigest(f.name(), "sha256", f.sha256(), f.size()));
  }
  if (!f.chunked_sha256().empty()) {
    RETURN_IF_ERROR(
        ValidateDigest(f.name(), "chunked_sha256", f.chunked_sha256(), f.size()));
  }
  return absl::OkStatus();
}

absl::Status ValidateFiles(const std::vector<v1::FileInfo>& files,
                           absl::StatusCode missing_code, v1::StepKind kind) {
  const bool saved_model = kind == v1::SAVED_MODEL;
  std::set<std::string> names;
  int num_shards = -1;
  std::set<int> shards;
  for (const v1::FileInfo& f : files) {
    if (saved_model) {
      RETURN_IF_ERROR(ValidateRelativePath(f.name(), "a SavedModel file name"));
    } else {
      RETURN_IF_ERROR(ValidateFileName(f.name()));
    }
    if (!names.insert(f.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("file '", f.name(), "' is announced twice"));
    }
    if (f.size() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("file '", f.name(), "' has a negative size ", f.size()));
    }
    RETURN_IF_ERROR(ValidateFileDigests(f));
    if (!saved_model && absl::StartsWith(f.name(), "data-")) {
      ASSIGN_OR_RETURN(DataShard shard, ParseDataFileName(f.name()));
      if (num_shards >= 0 && shard.num_shards != num_shards) {
        return absl::InvalidArgumentError(
            absl::StrCat("data files disagree on the shard count: '", f.name(), "' says ",
                         shard.num_shards, ", another says ", num_shards));
      }
      num_shards = shard.num_shards;
      shards.insert(shard.shard);
    }
  }
  if (saved_model) {
    return ValidateSavedModelNames(std::vector<std::string>(names.begin(), names.end()),
                                   missing_code);
  }
  std::vector<std::string> missing;
  if (names.count("index") == 0) missing.push_back("index");
  if (num_shards < 0) missing.push_back("data-NNNNN-of-MMMMM");
  for (int i = 0; i < num_shards; ++i) {
    if (shards.count(i) == 0) missing.push_back(DataFileName(i, num_shards));
  }
  if (!missing.empty()) {
    return absl::Status(
        missing_code,
        absl::StrCat("the checkpoint is missing ", absl::StrJoin(missing, ", "),
                     "; a TensorFlow checkpoint needs its <prefix>.index and every "
                     "<prefix>.data-NNNNN-of-MMMMM shard: upload them"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Sameness> SameFiles(const storage::CheckpointRecord& record,
                                   const v1::BeginUploadRequest& request,
                                   const planner::BlobLookup& blob_of) {
  storage::CheckpointRecord announced;
  announced.set_basename(request.basename());
  std::vector<v1::FileInfo> files(request.files().begin(), request.files().end());
  std::sort(files.begin(), files.end(), [](const v1::FileInfo& a, const v1::FileInfo& b) {
    return a.name() < b.name();
  });
  bool undigested = false;
  for (const v1::FileInfo& f : files) {
    *announced.add_files() = FileRecordOf(f);
    undigested = undigested || (f.sha256().empty() && f.chunked_sha256().empty());
  }
  ASSIGN_OR_RETURN(bool same, planner::SameContent(record, announced, blob_of));
  if (same) return Sameness::kSame;
  if (!undigested || record.basename() != announced.basename() ||
      record.files_size() != announced.files_size()) {
    return Sameness::kDifferent;
  }
  // Without a digest only the names and sizes can be compared now.
  for (int i = 0; i < record.files_size(); ++i) {
    const storage::FileRecord& a = record.files(i);
    const storage::FileRecord& b = announced.files(i);
    if (a.name() != b.name() || CompareFileDigests(a, b) == Sameness::kDifferent) {
      return Sameness::kDifferent;
    }
  }
  return Sameness::kUnknown;
}

absl::Status ValidateAlias(absl::string_view alias) {
  bool ok =
      !alias.empty() && alias.size() <= 64 &&
      (absl::ascii_isalpha(static_cast<unsigned char>(alias[0])) || alias[0] == '_');
  for (char c : alias) {
    ok = ok && (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                c == '.' || c == '-');
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "alias '", absl::CEscape(alias),
        "' is not an identifier: use a letter or '_' followed by letters, digits, '_', "
        "'.' or '-', at most 64 bytes (e.g. 'production')"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRetention(const v1::RetentionPolicy& p) {
  if (p.max_to_keep() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_to_keep ", p.max_to_keep(), " is negative; use 0 to keep every step"));
  }
  if (!(p.keep_every_n_hours() >= 0) || std::isinf(p.keep_every_n_hours())) {
    return absl::InvalidArgumentError(
        absl::StrCat("keep_every_n_hours ", p.keep_every_n_hours(),
                     " is not a finite number >= 0; use 0 to preserve nothing"));
  }
  return absl::OkStatus();
}

}  // namespace mgreg
