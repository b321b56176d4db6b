// The one conversion from absl::Status to grpc::Status on the server's edge.
#ifndef MGREG_SERVER_GRPC_STATUS_H_
#define MGREG_SERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace mgreg {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace mgreg

#endif  // MGREG_SERVER_GRPC_STATUS_H_
