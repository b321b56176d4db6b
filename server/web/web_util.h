// Small pieces the web pages are made of: HTML escaping, a JSON writer, URL query
// building, human formats for sizes and times, and the HTTP status of an absl::Status.
// Pure functions (no I/O); thread-safe.
#ifndef MGREG_SERVER_WEB_WEB_UTIL_H_
#define MGREG_SERVER_WEB_WEB_UTIL_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace mgreg::web {

// Text made safe for HTML element content and quoted attribute values: & < > " ' are
// replaced by entities. Every name, value and message a page shows goes through it.
std::string HtmlEscape(absl::string_view text);

// Percent-encodes everything but unreserved characters (RFC 3986) and '/', for query
// values and paths.
std::string UrlEncode(absl::string_view text);

// Decodes %XX escapes (and '+' as a space when `form`). Malformed escapes stay as they
// are.
std::string UrlDecode(absl::string_view text, bool form = true);
// The key=value pairs of a query string or form body, decoded, in order.
std::vector<std::pair<std::string, std::string>> ParseQuery(absl::string_view query);

// "path?k1=v1&k2=v2" with each value URL-encoded; pairs with an empty value are left
// out. The result is meant for an href, so HtmlEscape it there (the '&').
std::string BuildUrl(
    absl::string_view path,
    std::initializer_list<std::pair<absl::string_view, std::string>> query);

// "1.5 MiB", "512 B".
std::string FormatBytes(int64_t bytes);
// "2026-12-04 18:47:16 UTC".
std::string FormatUtc(absl::Time t);
// RFC 3339 with the UTC offset "Z" (JSON, <time datetime>).
std::string FormatRfc3339(absl::Time t);
// "12 s ago", "3 min ago", "5 h ago", "2 d ago" ("in the future" for t > now).
std::string FormatAgo(absl::Time t, absl::Time now);

// The HTTP status for an error of the registry service (404 for NOT_FOUND, 400 for
// INVALID_ARGUMENT, 401, 403, ...; 500 for codes a caller cannot act on).
int HttpStatusOf(const absl::Status& status);
// "Not Found", "Bad Request", ... for the status codes HttpStatusOf returns.
const char* HttpReason(int http_status);
// "NOT_FOUND", ... (absl's canonical names).
std::string StatusCodeName(absl::StatusCode code);

// Writes JSON text. Callers nest Begin/End calls correctly; keys are given with Key()
// before each member value of an object.
class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(absl::string_view key);
  JsonWriter& String(absl::string_view value);
  JsonWriter& Int(int64_t value);
  // Non-finite values are written as null (JSON has no NaN).
  JsonWriter& Double(double value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();

  // Shorthands for a member: Key(key) then the value.
  JsonWriter& Member(absl::string_view key, absl::string_view value) {
    return Key(key).String(value);
  }
  JsonWriter& Member(absl::string_view key, const char* value) {
    return Key(key).String(value);
  }
  JsonWriter& Member(absl::string_view key, const std::string& value) {
    return Key(key).String(value);
  }
  JsonWriter& Member(absl::string_view key, int64_t value) { return Key(key).Int(value); }
  JsonWriter& Member(absl::string_view key, int value) { return Key(key).Int(value); }
  JsonWriter& Member(absl::string_view key, bool value) { return Key(key).Bool(value); }
  JsonWriter& Member(absl::string_view key, double value) {
    return Key(key).Double(value);
  }

  const std::string& str() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  void Separate();

  std::string out_;
  // Per open container: whether it has a member yet.
  std::vector<bool> has_member_;
  bool after_key_ = false;
};

// A JSON string literal (with quotes) for `text`; '<', '>' and '&' are escaped as
// \u003c... so the text is inert even if a client mis-sniffs the response as HTML.
std::string JsonQuote(absl::string_view text);

}  // namespace mgreg::web

#endif  // MGREG_SERVER_WEB_WEB_UTIL_H_
