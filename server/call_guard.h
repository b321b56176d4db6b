// What the gRPC adapter does around every call besides the call itself: authorization
// (one place for every RPC), who the caller is to the core's rules (the writer its
// upload quotas count, what it may see and reuse), limits on streams and queue wait,
// and call metrics. The adapter's shared wrappers call it; handlers only say which
// action on which model each RPC is. Upload quotas and visibility rules themselves are
// the core's (server/core/upload_quota.h, service_options.h).
//
// Thread safety: all methods may be called concurrently.
#ifndef MGREG_SERVER_CALL_GUARD_H_
#define MGREG_SERVER_CALL_GUARD_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/auth.h"
#include "server/core/registry_service.h"
#include "server/server_metrics.h"

namespace mgreg {

// What one call acts on: a model by name, or the model of an open upload.
struct CallScope {
  Action action = Action::kRead;
  std::string model;
  // Set for calls that name only an upload; its model is looked up.
  std::string upload_id;
};

// The server's limits as configured (limits.* in the config file). The upload limits
// (max_upload_bytes, max_concurrent_uploads_per_writer, max_open_uploads) are passed on
// to the core (RegistryServiceOptions), which enforces them; the guard enforces the rest.
struct CallLimits {
  // 0 = no limit.
  int64_t max_upload_bytes = 0;
  int max_concurrent_uploads_per_writer = 0;
  // A unary call that waited longer for a worker fails DEADLINE_EXCEEDED; 0 = no limit.
  absl::Duration unary_deadline = absl::ZeroDuration();
  // Streaming calls (PutFile, ReadFile, GetMetaGraph, WatchCheckpoints) open at once
  // on the whole server; one more fails RESOURCE_EXHAUSTED. 0 = no limit.
  int max_open_streams = 0;
  // Open uploads on the whole server (every caller); 0 = no limit.
  int max_open_uploads = 0;
  // The server's largest message (ServerOptions::max_message_bytes): what one PutFile
  // stream may pin of the memory budget.
  int64_t max_message_bytes = 16 << 20;
};

class CallGuard {
 public:
  // Any pointer may be null (no authorization, no metrics). All must outlive the guard.
  CallGuard(const Authorizer* authorizer, ServerMetrics* metrics,
            RegistryService* service, CallLimits limits)
      : authorizer_(authorizer), metrics_(metrics), service_(service), limits_(limits) {}

  // Authorizes the call; returns the grant's name ("" without authorization).
  // UNAUTHENTICATED or PERMISSION_DENIED as Authorizer::Authorize.
  absl::StatusOr<std::string> Authorize(const grpc::CallbackServerContext* ctx,
                                        const CallScope& scope);

  // Who counts as one writer for the core's max_concurrent_uploads_per_writer: the
  // grant, or without tokens the client's host.
  std::string UploadPrincipal(const grpc::CallbackServerContext* ctx,
                              const std::string& principal) const;
  // The models `principal` may see in listings and watches (null without
  // authorization: every model).
  ModelFilter VisibleModels(const std::string& principal) const;

  // What `principal` may reuse of the stored content without sending it: everything
  // without authorization or for a grant without model prefixes, else the models its
  // prefixes cover (issue 11 item 6, see ReusableContent).
  ContentScope ReuseScope(const std::string& principal) const;

  // Before running a unary call that arrived at `start`: DEADLINE_EXCEEDED if it
  // waited for a worker beyond limits.unary_deadline or past the client's deadline.
  absl::Status CheckQueueWait(const grpc::CallbackServerContext* ctx,
                              absl::Time start) const;

  // Before a streaming call: RESOURCE_EXHAUSTED naming limits.max_open_streams when
  // that many are open. On OK the call holds a slot until it calls EndStream.
  absl::Status BeginStream();
  void EndStream();

  int64_t max_message_bytes() const { return limits_.max_message_bytes; }

  // Records a finished call.
  void Done(const char* method, const grpc::Status& status, absl::Time start,
            int64_t bytes_in, int64_t bytes_out);

 private:
  const Authorizer* const authorizer_;
  ServerMetrics* const metrics_;
  RegistryService* const service_;
  const CallLimits limits_;
  absl::Mutex mu_;
  int open_streams_ ABSL_GUARDED_BY(mu_) = 0;
};

// A slot of limits.max_open_streams, held by a streaming call from Acquire until the
// slot (a member of the call's reactor) is destroyed.
class StreamSlot {
 public:
  StreamSlot() = default;
  ~StreamSlot() {
    if (guard_ != nullptr) guard_->EndStream();
  }
  StreamSlot(const StreamSlot&) = delete;
  StreamSlot& operator=(const StreamSlot&) = delete;

  // CallGuard::BeginStream; on OK the slot is held.
  absl::Status Acquire(CallGuard* guard) {
    absl::Status admitted = guard->BeginStream();
    if (admitted.ok()) guard_ = guard;
    return admitted;
  }

 private:
  CallGuard* guard_ = nullptr;
};

// "OK", "NOT_FOUND", ... for a gRPC status code.
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace mgreg

#endif  // MGREG_SERVER_CALL_GUARD_H_
