#include "server/http_server.h"

#include <civetweb.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace mgreg {
namespace {

constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& listen_address, metrics::Registry* registry) {
  const size_t colon = listen_address.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(listen_address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics address '", listen_address, "' is not HOST:PORT (e.g. 0.0.0.0:9464)"));
  }
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer());
  server->registry_ = registry;
  server->host_ = listen_address.substr(0, colon);
  // civetweb spells IPv6 hosts with brackets and IPv4 "any" as a bare port.
  std::string ports = listen_address;
  if (server->host_.empty()) ports = listen_address.substr(colon + 1);

  static const bool kInit = (mg_init_library(0), true);
  (void)kInit;
  const char* options[] = {"listening_ports",    ports.c_str(), "num_threads", "4",
                           "request_timeout_ms", "10000",       nullptr};
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  // civetweb prints start-up errors itself; keep them for our message instead.
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };
  server->ctx_ = mg_start(&callbacks, nullptr, options);
  if (server->ctx_ == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "cannot serve metrics on ", listen_address,
        ": the address is in use or invalid; pick another --metrics-listen host:port"));
  }
  mg_set_request_handler(server->ctx_, "/metrics$", &MetricsHttpServer::HandleMetrics,
                         server.get());
  mg_server_port bound[4];
  const int n = mg_get_server_ports(server->ctx_, 4, bound);
  if (n < 1) return absl::InternalError("civetweb reports no listening port");
  server->port_ = bound[0].port;
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  if (ctx_ != nullptr) mg_stop(ctx_);
}

void MetricsHttpServer::AddHandler(const char* uri_pattern,
                                   int (*handler)(mg_connection*, void*), void* data) {
  mg_set_request_handler(ctx_, uri_pattern, handler, data);
}

std::string MetricsHttpServer::address() const { return absl::StrCat(host_, ":", port_); }

int MetricsHttpServer::HandleMetrics(mg_connection* conn, void* self) {
  const mg_request_info* info = mg_get_request_info(conn);
  if (std::strcmp(info->request_method, "GET") != 0 &&
      std::strcmp(info->request_method, "HEAD") != 0) {
    mg_send_http_error(conn, 405, "use GET /metrics");
    return 405;
  }
  const std::string body = static_cast<MetricsHttpServer*>(self)->registry_->Render();
  mg_send_http_ok(conn, kContentType, static_cast<long long>(body.size()));
  if (std::strcmp(info->request_method, "GET") == 0) {
    mg_write(conn, body.data(), body.size());
  }
  return 200;
}

}  // namespace mgreg
