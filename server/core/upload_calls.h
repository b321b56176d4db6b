// The calls of an upload, from BeginUpload to its commit or abort: the manifest and
// its validation, the quotas on open uploads, writing files (FileSink), reusing content
// the store holds (whole files and chunks, within what the writer may read), and the
// commit's validation of the checkpoint's or SavedModel's contents.
//
// Thread safety: all methods may be called concurrently. A FileSink is used by one
// thread at a time.
#ifndef MGREG_SERVER_CORE_UPLOAD_CALLS_H_
#define MGREG_SERVER_CORE_UPLOAD_CALLS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mgreg/v1/registry.pb.h"
#include "server/core/memory_budget.h"
#include "server/core/reusable_content.h"
#include "server/core/service_options.h"
#include "server/core/settings_calls.h"
#include "server/core/upload_file_sink.h"
#include "server/core/upload_quota.h"
#include "server/core/uploads.h"
#include "storage/store.h"

namespace mgreg {

class UploadCalls {
 public:
  // Every pointer must outlive the calls. `settings` applies retention after commits.
  UploadCalls(Store* store, const RegistryServiceOptions* options, MemoryBudget* memory,
              SettingsCalls* settings);

  // RegistryService's methods of the same names (see registry_service.h).
  absl::StatusOr<v1::Upload> BeginUpload(const v1::BeginUploadRequest& request,
                                         const ContentScope& scope,
                                         const std::string& writer);
  absl::StatusOr<std::unique_ptr<FileSink>> OpenFileSink(
      const v1::PutFileRequest::Header& header, const ContentScope& scope);
  absl::StatusOr<v1::Upload> GetUpload(const v1::GetUploadRequest& request);
  absl::StatusOr<v1::Checkpoint> CommitUpload(const v1::CommitUploadRequest& request);
  absl::Status AbortUpload(const v1::AbortUploadRequest& request);
  absl::StatusOr<v1::FindChunksResponse> FindChunks(const v1::FindChunksRequest& request,
                                                    const ContentScope& scope);
  std::vector<std::string> ExpireIdleUploads();
  absl::StatusOr<std::string> UploadModel(absl::string_view upload_id);
  size_t open_uploads() { return uploads_.open_count(); }

 private:
  // BeginUpload once the quotas admitted it.
  absl::StatusOr<v1::Upload> BeginAdmitted(const v1::BeginUploadRequest& request,
                                           const ContentScope& scope);
  // The upload as BeginUpload and GetUpload return it: its files and the chunk size.
  v1::Upload Describe(const UploadSession& session) const
      ABSL_SHARED_LOCKS_REQUIRED(session.mu);
  // Adds an announced file to an upload; marks it complete if the store holds it and
  // `scope` may reuse it. `same_as`, if not null, is the stored file it is known to
  // equal (the step exists with this content): its digests complete the file's, so an
  // old record's content is found by its whole-file digest.
  absl::Status AddUploadFile(UploadSession& session, const v1::FileInfo& f,
                             const storage::FileRecord* same_as,
                             const ContentScope& scope)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(session.mu);
  // True if `scope` may name the chunk (32-byte SHA-256) instead of sending it: the
  // store holds it, and a step `scope` may read, `session` itself or another open upload
  // `scope` began has it.
  absl::StatusOr<bool> MayReuseChunk(UploadSession& session, const ContentScope& scope,
                                     const std::string& sha256_raw);
  // The commit's check of the contents: the bundle's .index against its shards, the
  // .meta parses; for a SavedModel, ValidateSavedModelContents. INVALID_ARGUMENT naming
  // the file. Sets *graph_sha256 to the whole-file SHA-256 (hex) of the graph file
  // (.meta or saved_model.pb[txt]) it parses, empty without one.
  absl::Status ValidateContents(const UploadSession& session, std::string* graph_sha256);

  Store* const store_;
  const RegistryServiceOptions* const options_;
  MemoryBudget* const memory_;
  SettingsCalls* const settings_;
  UploadManager uploads_;
  UploadQuota quota_;
  ReusableContent reusable_;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_UPLOAD_CALLS_H_
