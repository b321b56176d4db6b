#include "server/server.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "common/status_macros.h"
#include "server/grpc_service.h"
#include "server/thread_pool.h"

namespace mgreg {

absl::StatusOr<std::unique_ptr<RegistryServer>> RegistryServer::BuildAndStart(
    const ServerOptions& options) {
  std::unique_ptr<RegistryServer> server(new RegistryServer());
  server->options_ = options;
  if (options.in_memory) {
    server->store_ = NewMemoryStore();
  } else {
    RocksDbStoreOptions store_options;
    store_options.path = options.data_dir;
    ASSIGN_OR_RETURN(server->store_, OpenRocksDbStore(store_options));
  }
  server->service_ =
      std::make_unique<RegistryService>(server->store_.get(), options.service);
  server->pool_ = std::make_unique<ThreadPool>(std::max(1, options.worker_threads));
  server->grpc_service_ = std::make_unique<GrpcRegistryService>(server->service_.get(),
                                                                server->pool_.get());

  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.RegisterService(server->grpc_service_.get());
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.listen_address,
        ": the address is in use or invalid; pick another --listen host:port"));
  }

  const absl::Duration period =
      std::clamp(options.service.upload_ttl / 4, absl::Milliseconds(50), absl::Seconds(30));
  RegistryServer* raw = server.get();
  server->reaper_ = std::thread([raw, period]() {
    while (!raw->stop_reaper_.WaitForNotificationWithTimeout(period)) {
      raw->service_->ExpireIdleUploads();
    }
  });
  return server;
}

RegistryServer::~RegistryServer() { Shutdown(absl::Seconds(5)); }

std::string RegistryServer::address() const {
  std::string host = options_.listen_address.substr(0, options_.listen_address.rfind(':'));
  return absl::StrCat(host, ":", port_);
}

void RegistryServer::Shutdown(absl::Duration deadline) {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() +
                      absl::ToChronoMilliseconds(deadline));
  }
  stop_reaper_.Notify();
  if (reaper_.joinable()) reaper_.join();
  pool_.reset();  // drains queued work
  server_.reset();
  grpc_service_.reset();
  service_.reset();
  store_.reset();
}

}  // namespace mgreg
