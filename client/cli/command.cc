#include "client/cli/command.h"

#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/cli/output.h"
#include "client/local_file.h"
#include "common/status_macros.h"

namespace mgreg::cli {

std::vector<Option> ConnectionOptions() {
  return {
      {"server", "HOST:PORT", "the server (default $MGREG_SERVER, else 127.0.0.1:8470)"},
      {"token", "T", "bearer token sent with every call (default $MGREG_TOKEN)"},
      {"tls", "", "connect with TLS, trusting the system's CAs"},
      {"ca-cert", "FILE", "connect with TLS, trusting the CAs in FILE (PEM)"},
      {"cert", "FILE", "client certificate for mutual TLS (PEM; needs --key)"},
      {"key", "FILE", "the client certificate's private key (PEM)"},
  };
}

std::vector<Option> StepOrAliasOptions() {
  return {{"step", "N", "this step (default: the latest)"},
          {"alias", "A", "the step alias A names"}};
}

std::vector<Option> GraphOptions() {
  return {
      {"clear-devices", "", "drop device placements (export_meta_graph clear_devices)"},
      {"export-scope", "S", "keep only the nodes under name scope S, without the scope"},
      {"collection", "K", "keep collection K (repeatable; default: every collection)"},
      {"no-collections", "", "keep no collection"},
      {"strip-default-attrs", "", "drop attributes that have their default value"},
      {"clear-extraneous-savers", "", "keep only the saver of the graph's saver_def"},
      {"unbound-inputs-col", "NAME",
       "collection listing inputs cut by --export-scope (empty: none)"},
      {"as-text", "", "write the MetaGraphDef in text format"},
  };
}

Option TagsOption() {
  return {"tags", "T1,T2",
          "SavedModel steps: the MetaGraphDef with this tag set (default: the only one)"};
}

Option JsonOption() { return {"json", "", "print the result as JSON"}; }

std::vector<Option> Join(std::initializer_list<std::vector<Option>> lists) {
  std::vector<Option> out;
  for (const std::vector<Option>& l : lists) out.insert(out.end(), l.begin(), l.end());
  return out;
}

void ParsedOptions::Add(const std::string& name, std::optional<std::string> value) {
  std::vector<std::string>& values = values_[name];
  if (value.has_value()) values.push_back(std::move(*value));
}

std::optional<std::string> ParsedOptions::Value(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> ParsedOptions::Values(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>() : it->second;
}

bool Command::TakesOption(const std::string& option) const {
  for (const Option& o : options) {
    if (o.name == option) return true;
  }
  return false;
}

bool Context::OutIsTerminal() const {
  return &out_ == &std::cout && ::isatty(STDOUT_FILENO);
}

absl::StatusOr<Client*> Context::Connect() {
  if (client_ != nullptr) return client_.get();
  ClientOptions options;
  if (auto s = options_.Value("server")) {
    options.target = *s;
  } else if (const char* env = std::getenv("MGREG_SERVER"); env && *env) {
    options.target = env;
  }
  if (auto t = options_.Value("token")) {
    options.token = *t;
  } else if (const char* env = std::getenv("MGREG_TOKEN"); env && *env) {
    options.token = env;
  }
  options.use_tls =
      options_.Has("tls") || options_.Has("ca-cert") || options_.Has("cert");
  for (auto [flag, pem] :
       {std::pair<const char*, std::string*>{"ca-cert", &options.ca_cert_pem},
        {"cert", &options.cert_pem},
        {"key", &options.key_pem}}) {
    if (auto path = options_.Value(flag)) {
      absl::StatusOr<std::string> text = ReadWholeFile(*path);
      if (!text.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag, " '", *path, "': ", text.status().message()));
      }
      *pem = std::move(*text);
    }
  }
  ASSIGN_OR_RETURN(client_, Client::Connect(options));
  return client_.get();
}

absl::Status Context::PrintJson(const google::protobuf::Message& m) {
  ASSIGN_OR_RETURN(const std::string text, Json(m));
  out_ << text;
  return absl::OkStatus();
}

absl::Status Context::PrintJsonLine(const google::protobuf::Message& m) {
  ASSIGN_OR_RETURN(const std::string line, JsonLine(m));
  out_ << line << "\n" << std::flush;
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ParseStep(absl::string_view text) {
  int64_t step = 0;
  if (!absl::SimpleAtoi(text, &step)) {
    return absl::InvalidArgumentError(
        absl::StrCat("step '", text, "' is not an integer"));
  }
  if (step < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("step ", step, " is negative; steps are integers >= 0"));
  }
  return step;
}

absl::StatusOr<std::optional<int64_t>> StepOption(const ParsedOptions& options) {
  std::optional<std::string> text = options.Value("step");
  if (!text.has_value()) return std::optional<int64_t>();
  ASSIGN_OR_RETURN(int64_t step, ParseStep(*text));
  return std::optional<int64_t>(step);
}

absl::StatusOr<StepRef> StepRefOption(const ParsedOptions& options) {
  ASSIGN_OR_RETURN(std::optional<int64_t> step, StepOption(options));
  std::optional<std::string> alias = options.Value("alias");
  if (step.has_value() && alias.has_value()) {
    return absl::InvalidArgumentError("give --step or --alias, not both");
  }
  if (alias.has_value()) return StepRef::Alias(*alias);
  return StepRef(step);
}

absl::StatusOr<int> IntOption(const ParsedOptions& options, const std::string& name,
                              int fallback) {
  std::optional<std::string> text = options.Value(name);
  if (!text.has_value()) return fallback;
  int value = 0;
  if (!absl::SimpleAtoi(*text, &value) || value < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " '", *text, "' is not an integer >= 0"));
  }
  return value;
}

v1::GraphOptions GraphOptionsFrom(const ParsedOptions& options) {
  v1::GraphOptions o;
  if (options.Has("collection")) {
    for (const std::string& k : options.Values("collection")) o.add_collection_list(k);
    o.set_has_collection_list(true);
  }
  if (options.Has("no-collections")) o.set_has_collection_list(true);
  if (auto s = options.Value("export-scope")) o.set_export_scope(*s);
  o.set_clear_devices(options.Has("clear-devices"));
  o.set_strip_default_attrs(options.Has("strip-default-attrs"));
  o.set_clear_extraneous_savers(options.Has("clear-extraneous-savers"));
  if (auto s = options.Value("unbound-inputs-col")) {
    if (s->empty()) {
      o.set_no_unbound_inputs_col(true);
    } else {
      o.set_unbound_inputs_col_name(*s);
    }
  }
  o.set_as_text(options.Has("as-text"));
  if (auto tags = options.Value("tags")) {
    for (absl::string_view t : absl::StrSplit(*tags, ',', absl::SkipEmpty())) {
      o.add_tags(std::string(t));
    }
  }
  return o;
}

}  // namespace mgreg::cli
