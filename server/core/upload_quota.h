// The quotas on open uploads: how many the whole service holds open, and how many one
// writer (a principal: a token's grant, or without tokens the client's host) holds.
// The service checks them at BeginUpload; the transport only says who the writer is.
//
// Thread safety: all methods may be called concurrently.
#ifndef MGREG_SERVER_CORE_UPLOAD_QUOTA_H_
#define MGREG_SERVER_CORE_UPLOAD_QUOTA_H_

#include <functional>
#include <map>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "mgreg/v1/registry.pb.h"

namespace mgreg {

class UploadQuota {
 public:
  // 0 = no limit.
  UploadQuota(int max_open_uploads, int max_per_writer)
      : max_open_uploads_(max_open_uploads), max_per_writer_(max_per_writer) {}

  // Before beginning an upload of `writer` while `open` uploads are open (`is_open`
  // says whether an upload id is still open): RESOURCE_EXHAUSTED naming the limit if
  // the service holds max_open_uploads, or `writer` holds max_per_writer (counting the
  // uploads it is beginning now). On OK a slot is reserved: call Finish with the result.
  absl::Status Admit(const std::string& writer, size_t open,
                     const std::function<bool(absl::string_view id)>& is_open);
  // After Admit: the reserved slot holds the new upload, or is released if beginning
  // it failed.
  void Finish(const std::string& writer, const absl::StatusOr<v1::Upload>& upload);

 private:
  const int max_open_uploads_;
  const int max_per_writer_;
  absl::Mutex mu_;
  // writer -> ids of uploads it began (pruned of closed ones when counted).
  std::map<std::string, std::set<std::string>> uploads_ ABSL_GUARDED_BY(mu_);
  // writer -> slots reserved by Admit and not yet finished.
  std::map<std::string, int> reserved_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_UPLOAD_QUOTA_H_
