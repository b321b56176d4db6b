#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/grpc_service.h"
#include "server/http_server.h"
#include "server/server_metrics.h"
#include "server/thread_pool.h"
#include "server/web/web_pages.h"
#ifdef MGREG_WITH_RADOS
#include "storage/rados/rados_store.h"
#endif

namespace mgreg {
namespace {

std::shared_ptr<grpc::ServerCredentials> Credentials(const ServerTlsOptions& tls) {
  if (tls.cert_pem.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl(
      tls.client_ca_pem.empty()
          ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
          : (tls.require_client_cert
                 ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                 : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY));
  ssl.pem_root_certs = tls.client_ca_pem;
  ssl.pem_key_cert_pairs.push_back({tls.key_pem, tls.cert_pem});
  return grpc::SslServerCredentials(ssl);
}

int DurationMs(absl::Duration d) {
  return static_cast<int>(
      std::clamp<int64_t>(absl::ToInt64Milliseconds(d), 1, INT32_MAX));
}

// Health and reflection are process-wide builder settings; set them once.
void EnableStandardServices() {
  static const bool kDone = [] {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    return true;
  }();
  (void)kDone;
}

}  // namespace

std::vector<std::pair<std::string, int>> Http2ChannelArguments(
    const ServerOptions& options) {
  return {
      {GRPC_ARG_MAX_CONCURRENT_STREAMS, std::max(1, options.max_concurrent_streams)},
      // Keepalive (issue 11 item 8): pings find half-open connections; clients' pings
      // are accepted every 10 s or more (the mgreg clients ping every 60 s during
      // calls).
      {GRPC_ARG_KEEPALIVE_TIME_MS, DurationMs(options.keepalive_time)},
      {GRPC_ARG_KEEPALIVE_TIMEOUT_MS, DurationMs(options.keepalive_timeout)},
      {GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1},
      {GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000},
      {GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0},
      // BDP probing, off unless options.http2_bdp_probe (issue 17, memory row). gRPC
      // reads a stream's bytes into 64 KiB slices as they arrive, before a handler asks
      // for them, up to the HTTP/2 window. With probing, loopback pushes grew the window
      // until 30-50 MiB of PutFile bytes sat in those slices per connection, outside
      // the memory budget (which does not bound them), and the server's peak RSS moved
      // 94-132 MiB between identical runs of bench/memory_bench. Without it a stream's
      // window is gRPC's default 64 KiB plus the rest of the message its handler is
      // reading, so a PutFile stream holds about one message (2-5 MiB measured); same
      // server CPU per GiB pushed in alternating runs. The price: a client one round
      // trip away waits that round trip before each message after the first. Over a
      // LAN (0.2 ms) that is nothing against a 2 MiB message; at 50 ms it caps a file
      // near 40 MB/s. An operator with distant clients trades the memory for their
      // throughput by turning it on (docs/operations.md "Working memory";
      // bench/RESULTS.md, "receive window").
      {GRPC_ARG_HTTP2_BDP_PROBE, options.http2_bdp_probe ? 1 : 0},
  };
}

absl::Status ValidateServerOptions(const ServerOptions& options) {
  if (options.listen_address.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address '", options.listen_address, "' is not HOST:PORT"));
  }
  const bool tls = !options.tls.cert_pem.empty();
  if (!tls && !options.insecure && !IsLoopbackAddress(options.listen_address)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to serve plaintext gRPC on ", options.listen_address,
        ": configure tls (cert_file, key_file) in the config file, listen on 127.0.0.1, "
        "or pass --insecure"));
  }
  if (options.store != "rocksdb" && options.store != "memory" &&
      options.store != "rados") {
    return absl::InvalidArgumentError(absl::StrCat("unknown store '", options.store,
                                                   "': use rocksdb, memory or rados"));
  }
  if (options.store == "rados" && options.rados.ceph_conf.empty()) {
    return absl::InvalidArgumentError(
        "the rados store needs the cluster's configuration: --ceph-conf FILE (or "
        "rados { ceph_conf: ... } in the config file)");
  }
  if (options.store == "rados" && options.rados.pool.empty()) {
    return absl::InvalidArgumentError("--rados-pool must not be empty");
  }
  if (options.worker_threads < 1) {
    return absl::InvalidArgumentError("worker threads must be at least 1");
  }
  return Authorizer::Create(options.tokens).status();
}

absl::StatusOr<std::unique_ptr<RegistryServer>> RegistryServer::BuildAndStart(
    const ServerOptions& options) {
  RETURN_IF_ERROR(ValidateServerOptions(options));
  std::unique_ptr<RegistryServer> server(new RegistryServer());
  server->options_ = options;
  ASSIGN_OR_RETURN(Authorizer authorizer, Authorizer::Create(options.tokens));
  server->authorizer_ = std::make_unique<Authorizer>(std::move(authorizer));

  if (options.store == "rados") {
#ifdef MGREG_WITH_RADOS
    RadosStoreOptions store_options;
    store_options.ceph_conf = options.rados.ceph_conf;
    store_options.pool = options.rados.pool;
    store_options.rados_namespace = options.rados.rados_namespace;
    store_options.user = options.rados.user;
    store_options.gc_period = options.rados.gc_period;
    store_options.dead_after = options.rados.dead_after;
    store_options.session_expiry = options.rados.session_expiry;
    store_options.event_window = options.event_window;
    ASSIGN_OR_RETURN(server->store_, OpenRadosStore(store_options));
#else
    return absl::FailedPreconditionError(
        "this mgreg-server was built without the RADOS store (MGREG_WITH_RADOS=OFF: "
        "librados-dev and libradospp-dev were missing)");
#endif
  } else if (options.in_memory || options.store == "memory") {
    MemoryStoreOptions store_options;
    store_options.event_window = options.event_window;
    server->store_ = NewMemoryStore(store_options);
  } else {
    RocksDbStoreOptions store_options;
    store_options.path = options.data_dir;
    store_options.event_window = options.event_window;
    store_options.min_free_bytes = options.min_free_bytes;
    ASSIGN_OR_RETURN(server->store_, OpenRocksDbStore(store_options, options.store_env));
  }
  RegistryServiceOptions service_options = options.service;
  service_options.max_upload_bytes = options.limits.max_upload_bytes;
  service_options.max_open_uploads = options.limits.max_open_uploads;
  service_options.max_concurrent_uploads_per_writer =
      options.limits.max_concurrent_uploads_per_writer;
  if (!options.in_memory) service_options.data_dir = options.data_dir;
  CallLimits limits = options.limits;
  limits.max_message_bytes = options.max_message_bytes;
  service_options.default_retention.set_max_to_keep(
      options.retention_defaults.max_to_keep());
  service_options.default_retention.set_keep_every_n_hours(
      options.retention_defaults.keep_every_n_hours());
  server->service_ =
      std::make_unique<RegistryService>(server->store_.get(), service_options);
  server->pool_ = std::make_unique<ThreadPool>(std::max(1, options.worker_threads));
  server->metrics_ = std::make_unique<ServerMetrics>();
  server->metrics_->SetSources(server->service_.get(), server->store_.get());
  server->guard_ = std::make_unique<CallGuard>(
      server->authorizer_.get(), server->metrics_.get(), server->service_.get(), limits);
  server->grpc_service_ = std::make_unique<GrpcRegistryService>(
      server->service_.get(), server->pool_.get(), server->guard_.get(),
      options.put_idle_timeout);

  if (!options.metrics_listen_address.empty()) {
    ASSIGN_OR_RETURN(server->http_,
                     MetricsHttpServer::Start(options.metrics_listen_address,
                                              &server->metrics_->registry()));
    server->web_ = std::make_unique<web::WebPages>(server->service_.get(),
                                                   server->authorizer_.get());
    server->web_->Register(server->http_.get());
  }

  EnableStandardServices();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, Credentials(options.tls),
                           &server->port_);
  builder.RegisterService(server->grpc_service_.get());
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  for (const auto& [name, value] : Http2ChannelArguments(options)) {
    builder.AddChannelArgument(name, value);
  }
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.listen_address,
        ": the address is in use or invalid; pick another --listen host:port"));
  }
  // The store is open: ready for traffic.
  if (grpc::HealthCheckServiceInterface* health =
          server->server_->GetHealthCheckService()) {
    health->SetServingStatus(true);
    health->SetServingStatus(v1::Registry::service_full_name(), true);
  }

  absl::Duration period = options.service.upload_ttl / 4;
  if (options.put_idle_timeout > absl::ZeroDuration()) {
    period = std::min(period, options.put_idle_timeout / 4);
  }
  period = std::clamp(period, absl::Milliseconds(50), absl::Seconds(30));
  RegistryServer* raw = server.get();
  server->reaper_ = std::thread([raw, period]() {
    while (!raw->stop_reaper_.WaitForNotificationWithTimeout(period)) {
      raw->grpc_service_->ExpireIdle();
    }
  });
  return server;
}

RegistryServer::~RegistryServer() { Shutdown(absl::Seconds(5)); }

std::string RegistryServer::address() const {
  std::string host =
      options_.listen_address.substr(0, options_.listen_address.rfind(':'));
  return absl::StrCat(host, ":", port_);
}

int RegistryServer::metrics_port() const { return http_ != nullptr ? http_->port() : 0; }

std::string RegistryServer::metrics_address() const {
  return http_ != nullptr ? http_->address() : "";
}

void RegistryServer::StartDraining() {
  if (server_ == nullptr) return;
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(false);
    health->SetServingStatus(v1::Registry::service_full_name(), false);
  }
}

void RegistryServer::Shutdown(absl::Duration deadline) {
  if (shut_down_) return;
  shut_down_ = true;
  StartDraining();
  // civetweb takes up to its 2 s poll quantum to stop: let it stop while gRPC drains.
  std::thread http_stop([this] { http_.reset(); });
  // Watches never end by themselves: end them first so in-flight calls can finish.
  if (service_ != nullptr) service_->CloseWatches();
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() +
                      absl::ToChronoMilliseconds(deadline));
  }
  stop_reaper_.Notify();
  if (reaper_.joinable()) reaper_.join();
  pool_.reset();  // drains queued work
  http_stop.join();
  if (metrics_ != nullptr) metrics_->ClearSources();
  server_.reset();
  grpc_service_.reset();
  guard_.reset();
  if (service_ != nullptr) {
    // Uploads not committed by now are aborted: their staged chunks are released with
    // the service, and nothing of them was ever visible.
    const size_t open = service_->open_uploads();
    if (open > 0) LogInfo("aborting ", open, " uncommitted upload(s)");
  }
  service_.reset();
  store_.reset();
}

}  // namespace mgreg
