#include "server/core/admin_calls.h"

#include <algorithm>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "common/status_macros.h"
#include "server/core/api_errors.h"

namespace mgreg {

absl::StatusOr<v1::BackupResponse> AdminCalls::Backup(const v1::BackupRequest& request) {
  if (request.dir().empty() || request.dir()[0] != '/') {
    return absl::InvalidArgumentError(
        "give the backup directory as an absolute path on the server's machine");
  }
  if (!options_->data_dir.empty()) {
    std::error_code ec;
    const std::filesystem::path data =
        std::filesystem::weakly_canonical(options_->data_dir, ec);
    const std::filesystem::path target =
        std::filesystem::weakly_canonical(request.dir(), ec);
    auto [d, t] = std::mismatch(data.begin(), data.end(), target.begin(), target.end());
    if (!ec && d == data.end()) {
      return api_errors::BackupIntoDataDir(request.dir(), options_->data_dir);
    }
  }
  absl::MutexLock lock(&backup_mu_);
  ASSIGN_OR_RETURN(StoreStats before, store_->GetStats());
  RETURN_IF_ERROR(store_->Backup(request.dir()));
  v1::BackupResponse out;
  out.set_dir(request.dir());
  out.set_revision(before.revision);
  out.set_checkpoints(before.checkpoints);
  return out;
}

absl::StatusOr<v1::CheckStoreResponse> AdminCalls::CheckStore(
    const v1::CheckStoreRequest& /*request*/) {
  ASSIGN_OR_RETURN(CheckReport report, store_->Check());
  v1::CheckStoreResponse out;
  out.set_consistent(report.ok());
  for (std::string& p : report.problems) out.add_problems(std::move(p));
  out.set_models(report.models);
  out.set_checkpoints(report.checkpoints);
  out.set_files(report.files);
  out.set_blobs(report.blobs);
  out.set_chunks(report.chunks);
  out.set_chunk_bytes(report.chunk_bytes);
  out.set_staged_chunks(report.staged_chunks);
  out.set_events(report.events);
  out.set_revision(report.revision);
  return out;
}

}  // namespace mgreg
