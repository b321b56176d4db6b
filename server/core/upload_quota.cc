#include "server/core/upload_quota.h"

#include <iterator>

#include "server/core/api_errors.h"

namespace mgreg {

absl::Status UploadQuota::Admit(
    const std::string& writer, size_t open,
    const std::function<bool(absl::string_view id)>& is_open) {
  // (Sizes are the upload's to check: it also sees files learned from PutFile.)
  if (max_open_uploads_ > 0 && static_cast<int64_t>(open) >= max_open_uploads_) {
    return api_errors::TooManyOpenUploads(static_cast<int64_t>(open), max_open_uploads_);
  }
  if (max_per_writer_ <= 0) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  std::set<std::string>& ids = uploads_[writer];
  for (auto it = ids.begin(); it != ids.end();) {
    it = is_open(*it) ? std::next(it) : ids.erase(it);
  }
  const int held = static_cast<int>(ids.size()) + reserved_[writer];
  if (held >= max_per_writer_) return api_errors::TooManyUploadsOfWriter(held);
  ++reserved_[writer];
  return absl::OkStatus();
}

void UploadQuota::Finish(const std::string& writer,
                         const absl::StatusOr<v1::Upload>& upload) {
  if (max_per_writer_ <= 0) return;
  absl::MutexLock lock(&mu_);
  if (--reserved_[writer] <= 0) reserved_.erase(writer);
  if (upload.ok()) uploads_[writer].insert(upload->upload_id());
  // A writer that holds nothing leaves no entry behind.
  if (auto it = uploads_.find(writer); it != uploads_.end() && it->second.empty()) {
    uploads_.erase(it);
  }
}

}  // namespace mgreg
