// The HTTP side of mgreg-server (civetweb): GET /metrics in the Prometheus text format,
// and whatever else registers a handler (the web pages, server/web/). Separate from the
// gRPC port so that scrapers need neither HTTP/2 nor tokens.
#ifndef MGREG_SERVER_HTTP_SERVER_H_
#define MGREG_SERVER_HTTP_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/metrics.h"

struct mg_context;
struct mg_connection;

namespace mgreg {

class MetricsHttpServer {
 public:
  // Serves `registry` (which must outlive the server) at GET /metrics on
  // `listen_address` (host:port, port 0 picks a free port). Returns INVALID_ARGUMENT
  // for a malformed address and UNAVAILABLE if it cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& listen_address, metrics::Registry* registry);
  ~MetricsHttpServer();

  // Serves requests whose path matches `uri_pattern` (civetweb's syntax: "/x$" is the
  // exact path /x) with `handler(conn, data)`, which returns the HTTP status it sent.
  void AddHandler(const char* uri_pattern, int (*handler)(mg_connection*, void*),
                  void* data);

  int port() const { return port_; }
  // "host:port" as bound.
  std::string address() const;

 private:
  MetricsHttpServer() = default;
  static int HandleMetrics(mg_connection* conn, void* self);

  metrics::Registry* registry_ = nullptr;
  std::string host_;
  int port_ = 0;
  mg_context* ctx_ = nullptr;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_HTTP_SERVER_H_
