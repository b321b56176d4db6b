#include "server/call_guard.h"

#include <chrono>

#include "absl/strings/str_cat.h"

namespace mgreg {

const char* GrpcCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

absl::StatusOr<std::string> CallGuard::Authorize(const grpc::CallbackServerContext* ctx,
                                                 const CallScope& scope) {
  if (authorizer_ == nullptr || !authorizer_->enabled()) return std::string();
  std::string authorization;
  const auto& metadata = ctx->client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    authorization.assign(it->second.data(), it->second.size());
  }
  std::string model = scope.model;
  if (model.empty() && !scope.upload_id.empty() && service_ != nullptr) {
    // An unknown upload resolves to no model: the call then needs a grant over every
    // model, or fails NOT_FOUND in the service.
    absl::StatusOr<std::string> m = service_->UploadModel(scope.upload_id);
    if (m.ok()) model = *m;
  }
  absl::StatusOr<std::string> principal =
      authorizer_->Authorize(authorization, scope.action, model);
  if (!principal.ok() && metrics_ != nullptr) {
    metrics_->RecordAuthFailure(principal.status().code() ==
                                        absl::StatusCode::kUnauthenticated
                                    ? "UNAUTHENTICATED"
                                    : "PERMISSION_DENIED");
  }
  return principal;
}

std::string CallGuard::UploadPrincipal(const grpc::CallbackServerContext* ctx,
                                       const std::string& principal) const {
  if (!principal.empty() || ctx == nullptr) return principal;
  // Without tokens, each client host is its own writer ("ipv4:10.0.0.7:41234").
  const std::string peer = ctx->peer();
  const size_t colon = peer.rfind(':');
  return absl::StrCat("peer ", colon == std::string::npos ? peer : peer.substr(0, colon));
}

ModelFilter CallGuard::VisibleModels(const std::string& principal) const {
  if (authorizer_ == nullptr) return nullptr;
  return [authorizer = authorizer_, principal](absl::string_view model) {
    return authorizer->Covers(principal, model);
  };
}

ContentScope CallGuard::ReuseScope(const std::string& principal) const {
  if (authorizer_ == nullptr || !authorizer_->enabled())
    return ContentScope::Everything();
  const std::vector<std::string>* prefixes = authorizer_->ModelPrefixes(principal);
  if (prefixes != nullptr && prefixes->empty()) return ContentScope::Everything();
  ContentScope scope;
  scope.everything = false;
  scope.key = principal;
  // An unknown grant (never authorized) may reuse nothing.
  if (prefixes != nullptr) scope.model_prefixes = *prefixes;
  scope.covers = [authorizer = authorizer_, principal](absl::string_view model) {
    return authorizer->Covers(principal, model);
  };
  return scope;
}

absl::Status CallGuard::BeginStream() {
  absl::MutexLock lock(&mu_);
  if (limits_.max_open_streams > 0 && open_streams_ >= limits_.max_open_streams) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "this server already has ", open_streams_,
        " streaming calls open, its limit (limits.max_open_streams); retry when "
        "some have ended, or raise the limit"));
  }
  ++open_streams_;
  return absl::OkStatus();
}

void CallGuard::EndStream() {
  absl::MutexLock lock(&mu_);
  --open_streams_;
}

absl::Status CallGuard::CheckQueueWait(const grpc::CallbackServerContext* ctx,
                                       absl::Time start) const {
  const absl::Time now = absl::Now();
  if (limits_.unary_deadline > absl::ZeroDuration() &&
      now - start > limits_.unary_deadline) {
    return absl::DeadlineExceededError(
        absl::StrCat("the call waited ", absl::FormatDuration(now - start),
                     " for a worker, longer than this server's limit of ",
                     absl::FormatDuration(limits_.unary_deadline),
                     " (limits.unary_deadline); the server is overloaded, retry later"));
  }
  if (ctx != nullptr && ctx->deadline() < std::chrono::system_clock::now()) {
    return absl::DeadlineExceededError(
        "the call's deadline passed while it waited for a worker; the server is "
        "overloaded, retry with a longer deadline");
  }
  return absl::OkStatus();
}

void CallGuard::Done(const char* method, const grpc::Status& status, absl::Time start,
                     int64_t bytes_in, int64_t bytes_out) {
  if (metrics_ == nullptr) return;
  metrics_->RecordCall(method, GrpcCodeName(status.error_code()), absl::Now() - start,
                       bytes_in, bytes_out);
}

}  // namespace mgreg
