// The one conversion from grpc::Status to absl::Status on the client's edge.
#ifndef MGREG_CLIENT_GRPC_STATUS_H_
#define MGREG_CLIENT_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace mgreg {

// Keeps the code and the server's message. UNAVAILABLE gets a hint about the address.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace mgreg

#endif  // MGREG_CLIENT_GRPC_STATUS_H_
