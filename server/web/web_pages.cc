// Routing, tokens, the HTML frame, static files and downloads of the web pages.
#include "server/web/web_pages.h"

#include <civetweb.h>

#include <cstring>
#include <functional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "server/http_server.h"
#include "server/web/web_util.h"

namespace mgreg::web {
namespace {

constexpr char kCookie[] = "mgreg_token";
// No inline script or style, nothing from elsewhere, no framing, forms only to here.
constexpr char kCsp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
constexpr size_t kMaxFormBytes = 16 << 10;

const char* const kPaths[] = {"/$",
                              "/model$",
                              "/step$",
                              "/events$",
                              "/file$",
                              "/graph$",
                              "/login$",
                              "/logout$",
                              "/static/app.js$",
                              "/static/app.css$",
                              "/static/favicon.svg$",
                              "/favicon.ico$"};

// Where /login may send the browser back to: a path on this server only.
std::string SafeNext(const std::string& next) {
  if (next.empty() || next[0] != '/' || absl::StartsWith(next, "//") ||
      next.find('\\') != std::string::npos ||
      next.find_first_of("\r\n") != std::string::npos) {
    return "/";
  }
  return next;
}

}  // namespace

std::string WebPages::Request::Param(absl::string_view name) const {
  for (const auto& [key, value] : params) {
    if (key == name) return value;
  }
  return "";
}

std::vector<std::string> WebPages::Request::Params(absl::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [key, value] : params) {
    if (key == name) out.push_back(value);
  }
  return out;
}

absl::StatusOr<int> PageSizeParam(const WebPages::Request& request, int fallback) {
  const std::string text = request.Param("page_size");
  if (text.empty()) return fallback;
  int n = 0;
  if (!absl::SimpleAtoi(text, &n) || n < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size '", text, "' is not a positive number; use 1 to 1000"));
  }
  return std::min(n, 1000);
}

WebPages::WebPages(RegistryService* service, const Authorizer* authorizer,
                   WebOptions options)
    : service_(service),
      authorizer_(authorizer),
      options_(options),
      summaries_(options.graph_summary_cache) {}

void WebPages::Register(MetricsHttpServer* http) {
  for (const char* path : kPaths) http->AddHandler(path, &WebPages::Handle, this);
}

int WebPages::Handle(mg_connection* conn, void* self) {
  return static_cast<WebPages*>(self)->Serve(conn);
}

int WebPages::Serve(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  Request request;
  request.conn = conn;
  request.method = info->request_method;
  request.path = info->local_uri != nullptr ? info->local_uri : "/";
  if (info->query_string != nullptr) request.query = info->query_string;
  request.params = ParseQuery(request.query);
  request.json = request.Param("format") == "json";

  if (absl::StartsWith(request.path, "/static/") || request.path == "/favicon.ico") {
    Send(conn, request, StaticAsset(request));
    return 200;
  }
  if (request.path == "/login") {
    Send(conn, request, Login(request));
    return 200;
  }
  if (request.path == "/logout") {
    Send(conn, request, Logout(request));
    return 200;
  }
  if (request.method != "GET" && request.method != "HEAD") {
    Response r = ErrorPage(
        request, absl::InvalidArgumentError("the pages are read-only: use GET"));
    r.status = 405;
    r.headers.push_back("Allow: GET, HEAD");
    Send(conn, request, r);
    return 405;
  }

  // The token: a bearer header wins over the cookie.
  std::string authorization;
  if (const char* header = mg_get_header(conn, "Authorization")) {
    authorization = header;
  } else if (const char* cookies = mg_get_header(conn, "Cookie")) {
    char token[4096];
    if (mg_get_cookie(cookies, kCookie, token, sizeof(token)) > 0) {
      authorization = absl::StrCat("Bearer ", UrlDecode(token, false));
      request.cookie_login = true;
    }
  }
  std::string model = request.Param(request.path == "/model" ? "name" : "model");
  if (authorizer_ != nullptr && authorizer_->enabled()) {
    absl::StatusOr<std::string> principal =
        authorizer_->Authorize(authorization, Action::kRead, model);
    if (!principal.ok()) {
      if (principal.status().code() == absl::StatusCode::kUnauthenticated &&
          !request.json) {
        Send(conn, request,
             LoginPage(request, 401,
                       authorization.empty()
                           ? "This registry needs a token with read access."
                           : std::string(principal.status().message())));
      } else {
        Send(conn, request, ErrorPage(request, principal.status()));
      }
      return HttpStatusOf(principal.status());
    }
    request.principal = *principal;
  }

  if (request.path == "/file" || request.path == "/graph") {
    absl::Status sent = Download(request);
    if (!sent.ok()) Send(conn, request, ErrorPage(request, sent));
    return HttpStatusOf(sent);
  }
  absl::StatusOr<Response> response;
  if (request.path == "/") {
    response = ModelsPage(request);
  } else if (request.path == "/model") {
    response = ModelPage(request);
  } else if (request.path == "/step") {
    response = StepPage(request);
  } else {
    response = EventsPage(request);
  }
  if (!response.ok()) {
    Send(conn, request, ErrorPage(request, response.status()));
    return HttpStatusOf(response.status());
  }
  Send(conn, request, *response);
  return response->status;
}

void WebPages::Send(mg_connection* conn, const Request& request,
                    const Response& response) {
  std::string head =
      absl::StrCat("HTTP/1.1 ", response.status, " ", HttpReason(response.status), "\r\n",
                   "Content-Type: ", response.content_type, "\r\n",
                   "Content-Length: ", response.body.size(), "\r\n",
                   "Content-Security-Policy: ", kCsp, "\r\n",
                   "X-Content-Type-Options: nosniff\r\n"
                   "Referrer-Policy: no-referrer\r\n"
                   "X-Frame-Options: DENY\r\n"
                   "Connection: close\r\n");
  if (!absl::StartsWith(request.path, "/static/")) {
    absl::StrAppend(&head, "Cache-Control: no-store\r\n");
  }
  for (const std::string& h : response.headers) absl::StrAppend(&head, h, "\r\n");
  head += "\r\n";
  mg_write(conn, head.data(), head.size());
  if (request.method != "HEAD")
    mg_write(conn, response.body.data(), response.body.size());
}

std::string WebPages::Layout(const Request& request, const std::string& title,
                             const std::string& body) const {
  std::string account;
  if (request.cookie_login) {
    account =
        "<form class=\"logout\" method=\"post\" action=\"/logout\">"
        "<button type=\"submit\">Log out</button></form>";
  }
  return absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>",
      HtmlEscape(title),
      " · mgreg</title><link rel=\"icon\" href=\"/static/favicon.svg\">"
      "<link rel=\"stylesheet\" href=\"/static/app.css\">"
      "<script src=\"/static/app.js\" defer></script></head><body>"
      "<header><a class=\"brand\" href=\"/\">mgreg</a><nav><a href=\"/\">Models</a>"
      "<a href=\"/events\">Events</a></nav>",
      account, "</header><main>", body, "</main></body></html>\n");
}

WebPages::Response WebPages::ErrorPage(const Request& request,
                                       const absl::Status& status) {
  Response r;
  r.status = HttpStatusOf(status);
  if (request.json) {
    JsonWriter j;
    j.BeginObject().Key("error").BeginObject();
    j.Member("code", StatusCodeName(status.code()));
    j.Member("message", std::string(status.message()));
    j.EndObject().EndObject();
    r.content_type = "application/json";
    r.body = j.Take();
    return r;
  }
  r.body = Layout(request, "Error",
                  absl::StrCat("<h1>", HtmlEscape(StatusCodeName(status.code())),
                               "</h1><p class=\"error\">", HtmlEscape(status.message()),
                               "</p><p><a href=\"/\">All models</a></p>"));
  return r;
}

WebPages::Response WebPages::LoginPage(const Request& request, int status,
                                       const std::string& message) {
  std::string next = request.path;
  if (!request.query.empty() && request.path != "/login") {
    absl::StrAppend(&next, "?", request.query);
  }
  if (request.path == "/login") next = SafeNext(request.Param("next"));
  Response r;
  r.status = status;
  r.body = Layout(
      request, "Log in",
      absl::StrCat("<h1>Log in</h1><p class=\"error\" id=\"login-message\">",
                   HtmlEscape(message),
                   "</p><form class=\"login\" method=\"post\" action=\"/login\">"
                   "<label>Token <input type=\"password\" name=\"token\" "
                   "autocomplete=\"current-password\" required autofocus></label>"
                   "<input type=\"hidden\" name=\"next\" value=\"",
                   HtmlEscape(next),
                   "\"><button type=\"submit\">Log in</button></form>"
                   "<p class=\"hint\">The token is kept in an HttpOnly cookie of this "
                   "browser and only ever read: nothing on these pages changes the "
                   "registry.</p>"));
  return r;
}

WebPages::Response WebPages::Login(Request& request) {
  if (request.method == "GET" || request.method == "HEAD") {
    return LoginPage(request, 200, "");
  }
  if (request.method != "POST") {
    Response r = ErrorPage(request, absl::InvalidArgumentError("use GET or POST /login"));
    r.status = 405;
    return r;
  }
  std::string body;
  char buf[4096];
  int n;
  while ((n = mg_read(request.conn, buf, sizeof(buf))) > 0 &&
         body.size() <= kMaxFormBytes) {
    body.append(buf, static_cast<size_t>(n));
  }
  if (body.size() > kMaxFormBytes) {
    return ErrorPage(request, absl::InvalidArgumentError("the login form is too large"));
  }
  request.params = ParseQuery(body);
  const std::string token(absl::StripAsciiWhitespace(request.Param("token")));
  if (token.empty()) return LoginPage(request, 400, "Enter a token.");
  if (authorizer_ != nullptr && authorizer_->enabled()) {
    absl::StatusOr<std::string> grant =
        authorizer_->Authorize(absl::StrCat("Bearer ", token), Action::kRead, "");
    if (!grant.ok()) {
      return LoginPage(request, HttpStatusOf(grant.status()),
                       std::string(grant.status().message()));
    }
  }
  Response r;
  r.status = 303;
  r.headers.push_back(absl::StrCat("Location: ", SafeNext(request.Param("next"))));
  r.headers.push_back(absl::StrCat("Set-Cookie: ", kCookie, "=", UrlEncode(token),
                                   "; Path=/; HttpOnly; SameSite=Strict"));
  return r;
}

WebPages::Response WebPages::Logout(const Request& request) {
  if (request.method != "POST") {
    Response r = ErrorPage(request, absl::InvalidArgumentError("use POST /logout"));
    r.status = 405;
    return r;
  }
  Response r;
  r.status = 303;
  r.headers.push_back("Location: /login");
  r.headers.push_back(absl::StrCat("Set-Cookie: ", kCookie,
                                   "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"));
  return r;
}

WebPages::Response WebPages::StaticAsset(const Request& request) {
  Response r;
  if (request.path == "/static/app.js") {
    r.content_type = "text/javascript; charset=utf-8";
    r.body = kAppJs;
  } else if (request.path == "/static/app.css") {
    r.content_type = "text/css; charset=utf-8";
    r.body = kAppCss;
  } else {
    r.content_type = "image/svg+xml";
    r.body = kFaviconSvg;
  }
  r.headers.push_back("Cache-Control: public, max-age=300");
  return r;
}

absl::Status WebPages::Download(const Request& request) {
  int64_t step = 0;
  const std::string step_text = request.Param("step");
  const std::string alias = request.Param("alias");
  if (alias.empty() && !absl::SimpleAtoi(step_text, &step)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step '", step_text, "' is not a number; give ?step=N or ?alias=NAME"));
  }
  const std::string model = request.Param("model");
  std::string filename;
  int64_t size = 0;
  // The first message carries the size; the rest of the stream follows it.
  std::string first;
  std::function<absl::StatusOr<bool>(std::string*)> next;
  if (request.path == "/file") {
    v1::ReadFileRequest read;
    read.set_model(model);
    read.set_step(step);
    read.set_alias(alias);
    read.set_name(request.Param("name"));
    ASSIGN_OR_RETURN(std::shared_ptr<MessageSource<v1::FileChunk>> source,
                     service_->ReadFile(read));
    v1::FileChunk chunk;
    ASSIGN_OR_RETURN(bool any, source->Next(&chunk));
    size = chunk.file().size();
    if (any) first = std::move(*chunk.mutable_data());
    filename = absl::StrCat("step-", alias.empty() ? step_text : alias, ".", read.name());
    next = [source](std::string* out) -> absl::StatusOr<bool> {
      v1::FileChunk c;
      ASSIGN_OR_RETURN(bool more, source->Next(&c));
      *out = std::move(*c.mutable_data());
      return more;
    };
  } else {
    v1::GetMetaGraphRequest get;
    get.set_model(model);
    if (alias.empty()) get.set_step(step);
    get.set_alias(alias);
    v1::GraphOptions& o = *get.mutable_options();
    const std::vector<std::string> collections = request.Params("collection");
    for (const std::string& c : collections) {
      if (!c.empty()) o.add_collection_list(c);
    }
    o.set_has_collection_list(o.collection_list_size() > 0);
    o.set_export_scope(request.Param("export_scope"));
    o.set_clear_devices(!request.Param("clear_devices").empty());
    o.set_strip_default_attrs(!request.Param("strip_default_attrs").empty());
    o.set_clear_extraneous_savers(!request.Param("clear_extraneous_savers").empty());
    o.set_as_text(!request.Param("as_text").empty());
    for (const std::string& t : request.Params("tags")) {
      if (!t.empty()) o.add_tags(t);  // a SavedModel's MetaGraphDef by tag set
    }
    ASSIGN_OR_RETURN(std::shared_ptr<MessageSource<v1::MetaGraphChunk>> source,
                     service_->GetMetaGraph(get));
    v1::MetaGraphChunk chunk;
    ASSIGN_OR_RETURN(bool any, source->Next(&chunk));
    size = chunk.info().size();
    if (any) first = std::move(*chunk.mutable_data());
    filename =
        absl::StrCat("step-", chunk.info().step(), o.as_text() ? ".pbtxt" : ".meta");
    next = [source](std::string* out) -> absl::StatusOr<bool> {
      v1::MetaGraphChunk c;
      ASSIGN_OR_RETURN(bool more, source->Next(&c));
      *out = std::move(*c.mutable_data());
      return more;
    };
  }
  for (char& c : filename) {
    if (c == '/' || c == '"' || c == '\\') c = '_';
  }
  const std::string head = absl::StrCat(
      "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
      "Content-Length: ",
      size, "\r\nContent-Disposition: attachment; filename=\"", filename,
      "\"\r\nContent-Security-Policy: ", kCsp,
      "\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n"
      "Connection: close\r\n\r\n");
  if (mg_write(request.conn, head.data(), head.size()) <= 0) return absl::OkStatus();
  if (request.method == "HEAD") return absl::OkStatus();
  // From here the status line is sent: a failure can only cut the body short, which
  // the client sees against Content-Length.
  std::string data = std::move(first);
  for (;;) {
    if (!data.empty() && mg_write(request.conn, data.data(), data.size()) <= 0) break;
    absl::StatusOr<bool> more = next(&data);
    if (!more.ok() || !*more) break;
  }
  return absl::OkStatus();
}

}  // namespace mgreg::web
