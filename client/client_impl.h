// The inside of mgreg::Client, shared by the files that implement it (client.cc: the
// channel and the reads, push.cc, restore.cc): the channel, the stub, and the one way
// every call is made. Not installed; callers use client/client.h.
#ifndef MGREG_CLIENT_CLIENT_IMPL_H_
#define MGREG_CLIENT_CLIENT_IMPL_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/client.h"
#include "client/grpc_status.h"
#include "common/status_macros.h"
#include "mgreg/v1/registry.grpc.pb.h"

namespace mgreg {

// Whether a call is bounded by ClientOptions::unary_timeout. Streams and the store check
// are not: they can last as long as the data they move or read.
enum class CallDeadline { kUnary, kNone };

struct Client::Impl {
  ClientOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Registry::Stub> stub;

  // Readies `ctx` for one call: the bearer token (if any), and the unary deadline.
  void PrepareContext(grpc::ClientContext* ctx, CallDeadline deadline) const;

  // The one way a unary RPC is made: a prepared context, the call, the status converted
  // by FromGrpcStatus (code and server message kept).
  template <typename Stub, typename Request, typename Response>
  absl::StatusOr<Response> Unary(Stub* on,
                                 grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                              const Request&, Response*),
                                 const Request& request,
                                 CallDeadline deadline = CallDeadline::kUnary) const {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, deadline);
    Response response;
    RETURN_IF_ERROR(FromGrpcStatus((on->*method)(&ctx, request, &response)));
    return response;
  }
  // The same on the registry's stub.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(grpc::Status (v1::Registry::Stub::*method)(
                                    grpc::ClientContext*, const Request&, Response*),
                                const Request& request,
                                CallDeadline deadline = CallDeadline::kUnary) const {
    return Unary(stub.get(), method, request, deadline);
  }
};

}  // namespace mgreg

#endif  // MGREG_CLIENT_CLIENT_IMPL_H_
