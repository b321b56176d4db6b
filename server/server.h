// Builds and runs an mgreg server: opens the store, starts the gRPC service on the
// callback API, and expires idle uploads in the background.
#ifndef MGREG_SERVER_SERVER_H_
#define MGREG_SERVER_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/registry_service.h"
#include "storage/store.h"

namespace grpc {
class Server;
}

namespace mgreg {

class GrpcRegistryService;
class ThreadPool;

struct ServerOptions {
  // host:port to listen on; port 0 picks a free port (see RegistryServer::port()).
  std::string listen_address = "127.0.0.1:8470";
  // RocksDB data directory; ignored when in_memory.
  std::string data_dir = "./data";
  // Keep everything in memory (tests, demos): nothing survives a restart.
  bool in_memory = false;
  // Workers for blocking work (commits, reads, exports).
  int worker_threads = 8;
  // Largest gRPC message accepted or sent, in bytes.
  int max_message_bytes = 16 << 20;
  RegistryServiceOptions service;
};

class RegistryServer {
 public:
  // Opens the store and starts serving. Returns the store's errors
  // (FAILED_PRECONDITION for a data dir in use, ...) and UNAVAILABLE if the address
  // cannot be bound.
  static absl::StatusOr<std::unique_ptr<RegistryServer>> BuildAndStart(
      const ServerOptions& options);
  ~RegistryServer();

  // The bound port and "host:port".
  int port() const { return port_; }
  std::string address() const;

  // Stops accepting calls, lets in-flight calls finish until `deadline` (then cancels
  // them), stops the workers and closes the store. Idempotent.
  void Shutdown(absl::Duration deadline);

  RegistryService* service() { return service_.get(); }
  Store* store() { return store_.get(); }

 private:
  RegistryServer() = default;

  ServerOptions options_;
  int port_ = 0;
  std::unique_ptr<Store> store_;
  std::unique_ptr<RegistryService> service_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<GrpcRegistryService> grpc_service_;
  std::unique_ptr<grpc::Server> server_;
  absl::Notification stop_reaper_;
  std::thread reaper_;
  bool shut_down_ = false;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_SERVER_H_
