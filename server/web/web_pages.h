// The registry's read-only web pages, served by mgreg-server's HTTP listener (the one of
// --metrics-listen, beside GET /metrics):
//
//   GET /                       models: latest step, commit time, size, steps, aliases;
//                               ?prefix= filter, paginated (?page_token=)
//   GET /model?name=M           a model: steps newest first (?before=STEP pages), plots
//                               of every numeric metadata key and of the step size,
//                               aliases, retention
//   GET /step?model=M&step=N    a step (or &alias=A): files, tensors (from the .index),
//                               graph summary, download links
//   GET /events                 the live stream of commits, deletes and alias moves
//                               (polled by app.js with ?since=REVISION)
//   GET /file?model=M&step=N&name=F     a stored file, streamed
//   GET /graph?model=M&step=N&...       the filtered export (mgreg graph's options)
//   GET|POST /login, POST /logout       the token cookie
//   GET /static/app.js, /static/app.css, /static/favicon.svg (also at /favicon.ico)
//
// Every page answers ?format=json with the data it shows. Everything goes through the
// transport-free RegistryService (its rules and errors) and the Authorizer (the gRPC
// side's token rules): with tokens configured every page needs a token with read scope,
// from an "Authorization: Bearer" header or the HttpOnly cookie /login sets, and shows
// only models the token covers. No request changes the store.
//
// Pages are HTML with every name and value escaped, served with a Content-Security-
// Policy that allows scripts and styles from this server only (no inline script).
//
// Thread safety: handlers run concurrently on civetweb's threads.
#ifndef MGREG_SERVER_WEB_WEB_PAGES_H_
#define MGREG_SERVER_WEB_WEB_PAGES_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/auth.h"
#include "server/core/registry_service.h"
#include "server/web/graph_summary.h"

struct mg_connection;

namespace mgreg {

class MetricsHttpServer;

namespace web {

struct WebOptions {
  // Rows per page when the request does not say (?page_size=, at most 1000).
  int models_page_size = 50;
  int steps_page_size = 50;
  int tensors_page_size = 500;
  // How often the events page asks for new events, in milliseconds.
  int events_poll_ms = 1000;
  // Graph summaries kept (by graph SHA-256).
  size_t graph_summary_cache = 64;
};

class WebPages {
 public:
  // `service` and `authorizer` (null: no tokens) must outlive the pages.
  WebPages(RegistryService* service, const Authorizer* authorizer,
           WebOptions options = WebOptions());

  // Serves the pages on `http` (which must not outlive this object's use by it: stop
  // the HTTP server before destroying the pages).
  void Register(MetricsHttpServer* http);

  // One request as the pages see it.
  struct Request {
    mg_connection* conn = nullptr;
    std::string method;
    std::string path;
    // The raw query string (after '?') and its decoded pairs.
    std::string query;
    std::vector<std::pair<std::string, std::string>> params;
    bool json = false;
    // The grant of the caller's token ("" without tokens).
    std::string principal;
    // Whether the caller came with the cookie (pages then offer "log out").
    bool cookie_login = false;
    // The first value of query parameter `name` ("" if absent), and all its values.
    std::string Param(absl::string_view name) const;
    std::vector<std::string> Params(absl::string_view name) const;
  };
  // A finished response (downloads are streamed instead).
  struct Response {
    int status = 200;
    std::string content_type = "text/html; charset=utf-8";
    std::string body;
    std::vector<std::string> headers;
  };

 private:
  static int Handle(mg_connection* conn, void* self);
  int Serve(mg_connection* conn);
  void Send(mg_connection* conn, const Request& request, const Response& response);

  Response Login(Request& request);
  Response Logout(const Request& request);
  Response ErrorPage(const Request& request, const absl::Status& status);
  Response LoginPage(const Request& request, int status, const std::string& message);
  Response StaticAsset(const Request& request);

  // The pages (web_models.cc, web_step.cc).
  absl::StatusOr<Response> ModelsPage(const Request& request);
  absl::StatusOr<Response> ModelPage(const Request& request);
  absl::StatusOr<Response> StepPage(const Request& request);
  absl::StatusOr<Response> EventsPage(const Request& request);
  // Streams /file or /graph; returns a status only when nothing was sent yet.
  absl::Status Download(const Request& request);

  // The whole HTML document around `body`.
  std::string Layout(const Request& request, const std::string& title,
                     const std::string& body) const;
  // The step's graph summary, from the cache or streamed from the store.
  absl::StatusOr<std::shared_ptr<const GraphSummary>> Summary(const v1::Checkpoint& step);
  // Each MetaGraphDef of a SavedModel step's stored `proto_name` (saved_model.pb).
  absl::StatusOr<std::vector<GraphSummary>> SavedModelSummaries(
      const v1::Checkpoint& step, const std::string& proto_name);
  bool MayRead(const Request& request, const std::string& model) const {
    return authorizer_ == nullptr || authorizer_->Covers(request.principal, model);
  }

  RegistryService* const service_;
  const Authorizer* const authorizer_;
  const WebOptions options_;
  GraphSummaryCache summaries_;
};

// The page size asked for with ?page_size= (default `fallback`, at most 1000).
// INVALID_ARGUMENT for something that is not a positive number.
absl::StatusOr<int> PageSizeParam(const WebPages::Request& request, int fallback);

// The static files (web_assets.cc).
extern const char kAppJs[];
extern const char kAppCss[];
extern const char kFaviconSvg[];

}  // namespace web
}  // namespace mgreg

#endif  // MGREG_SERVER_WEB_WEB_PAGES_H_
