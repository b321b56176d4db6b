// Builds and runs an mgreg server: opens the store, starts the gRPC service on the
// callback API (with grpc.health.v1 health and server reflection), the metrics HTTP
// endpoint, and expires idle uploads in the background.
#ifndef MGREG_SERVER_SERVER_H_
#define MGREG_SERVER_SERVER_H_

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "mgreg/config/v1/config.pb.h"
#include "server/call_guard.h"
#include "server/core/registry_service.h"
#include "storage/rocksdb/rocksdb_open.h"
#include "storage/store.h"

namespace grpc {
class Server;
}

namespace mgreg {

class Authorizer;
class GrpcRegistryService;
class MetricsHttpServer;
class ServerMetrics;
class ThreadPool;
namespace web {
class WebPages;
}

// TLS material, PEM-encoded. No cert_pem: plaintext.
struct ServerTlsOptions {
  std::string cert_pem;
  std::string key_pem;
  // CAs to verify client certificates with; empty: clients are not asked for one.
  std::string client_ca_pem;
  // Reject clients without a valid certificate (mutual TLS).
  bool require_client_cert = false;
};

// The limits of a server not configured otherwise (ServerOptions::limits).
inline CallLimits DefaultServerLimits() {
  CallLimits limits;
  limits.max_open_streams = 10000;
  limits.max_open_uploads = 1024;
  limits.max_concurrent_uploads_per_writer = 64;
  return limits;
}

struct ServerOptions {
  // host:port to listen on; port 0 picks a free port (see RegistryServer::port()).
  std::string listen_address = "127.0.0.1:8470";
  // RocksDB data directory; ignored when in_memory.
  std::string data_dir = "./data";
  // Keep everything in memory (tests, demos): nothing survives a restart.
  bool in_memory = false;
  // Where the registry lives: "rocksdb" (data_dir), "memory" (as in_memory) or "rados"
  // (a Ceph pool shared by any number of servers; needs rados.ceph_conf).
  std::string store = "rocksdb";
  struct Rados {
    std::string ceph_conf;
    std::string pool = "mgreg";
    std::string rados_namespace;
    std::string user = "client.admin";
    // The GC's bounds (RadosStoreOptions): how often one server collects, after how
    // long a server missing from the catalog's watchers loses its uploads' holds, and
    // after how long an upload session no server wrote is dropped with its holds.
    absl::Duration gc_period = absl::Minutes(1);
    absl::Duration dead_after = absl::Minutes(2);
    absl::Duration session_expiry = absl::Hours(2);
  } rados;
  // Workers for blocking work (commits, reads, exports).
  int worker_threads = 8;
  // Largest gRPC message accepted or sent, in bytes.
  int max_message_bytes = 16 << 20;
  // Concurrent calls (HTTP/2 streams) per client connection.
  int max_concurrent_streams = 100;
  // Watch events the store keeps for watchers that resume from a revision.
  int64_t event_window = 100000;
  RegistryServiceOptions service;

  // host:port of GET /metrics and the web pages (port 0 picks a free port); empty: no
  // HTTP listener.
  std::string metrics_listen_address;
  ServerTlsOptions tls;
  // Allow plaintext on a non-loopback listen address.
  bool insecure = false;
  // Bearer tokens (by SHA-256) and what they may do; none: every call is allowed.
  google::protobuf::RepeatedPtrField<config::v1::Token> tokens;
  // Defaults: DefaultServerLimits().
  CallLimits limits = DefaultServerLimits();
  // Retention applied to models without their own policy (read by the retention
  // feature; validated here).
  config::v1::RetentionDefaults retention_defaults;
  // A PutFile stream that waits longer for its next message is ended and its file
  // released (zero: never). The upload stays open for another writer until upload_ttl.
  absl::Duration put_idle_timeout = absl::Minutes(2);
  // HTTP/2 keepalive: the server pings each connection idle this long and closes it if
  // no answer comes within keepalive_timeout, so a half-open connection (a client host
  // gone) does not hold its calls open. Clients may ping as often as every 10 s.
  absl::Duration keepalive_time = absl::Minutes(1);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // gRPC's HTTP/2 BDP probing: off by default, so a PutFile stream holds about one
  // message (Http2ChannelArguments). On, distant clients push faster and a fast client
  // may keep tens of MiB per connection outside service.memory_budget_bytes.
  bool http2_bdp_probe = false;
  // How long a SIGTERM lets in-flight calls run (used by main.cc).
  absl::Duration shutdown_deadline = absl::Seconds(30);
  // New uploaded bytes are refused while the data dir's disk has less free (RocksDB
  // store only; 0: no check).
  int64_t min_free_bytes = 256ll << 20;
  // Tests: the RocksDB Env of the store (e.g. FaultInjectionFileSystem::env()); null
  // is the default file system. Not settable from flags or the config file.
  std::shared_ptr<rocksdb::Env> store_env;
};

// The integer channel arguments the gRPC server is built with (name, value): stream
// limit, keepalive and BDP probing, each set here and nowhere else.
std::vector<std::pair<std::string, int>> Http2ChannelArguments(
    const ServerOptions& options);

// Checks options without opening or binding anything (mgreg-server --check-config).
// FAILED_PRECONDITION for plaintext on a non-loopback address without `insecure`;
// INVALID_ARGUMENT for a bad token list or limit.
absl::Status ValidateServerOptions(const ServerOptions& options);

class RegistryServer {
 public:
  // Opens the store and starts serving.
  // Returns FAILED_PRECONDITION for plaintext on a non-loopback address without
  // `insecure`; INVALID_ARGUMENT for a bad token list; the store's errors
  // (FAILED_PRECONDITION for a data dir in use, ...); UNAVAILABLE if an address cannot
  // be bound.
  static absl::StatusOr<std::unique_ptr<RegistryServer>> BuildAndStart(
      const ServerOptions& options);
  ~RegistryServer();

  // The bound port and "host:port".
  int port() const { return port_; }
  std::string address() const;
  // The bound metrics port and "host:port" (0 and "" without a metrics endpoint).
  int metrics_port() const;
  std::string metrics_address() const;

  // Health turns NOT_SERVING (load balancers stop sending new work); calls are still
  // served. Shutdown does this first.
  void StartDraining();

  // Stops accepting calls, lets in-flight calls finish until `deadline` (then cancels
  // them), aborts uploads that were not committed (their staged bytes are released),
  // stops the workers and closes the store. Idempotent.
  void Shutdown(absl::Duration deadline);

  RegistryService* service() { return service_.get(); }
  Store* store() { return store_.get(); }
  ServerMetrics* metrics() { return metrics_.get(); }

 private:
  RegistryServer() = default;

  ServerOptions options_;
  int port_ = 0;
  std::unique_ptr<Store> store_;
  std::unique_ptr<RegistryService> service_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<Authorizer> authorizer_;
  std::unique_ptr<CallGuard> guard_;
  std::unique_ptr<GrpcRegistryService> grpc_service_;
  std::unique_ptr<grpc::Server> server_;
  // Declared before http_: the listener stops before the pages it serves go away.
  std::unique_ptr<web::WebPages> web_;
  std::unique_ptr<MetricsHttpServer> http_;
  absl::Notification stop_reaper_;
  std::thread reaper_;
  bool shut_down_ = false;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_SERVER_H_
