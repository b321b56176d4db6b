#include "server/config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "metagraph/collection_kinds.h"

namespace mgreg {
namespace {

using google::protobuf::TextFormat;
namespace cfg = config::v1;

// Keeps the first error of the text-format parser with its position.
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  explicit FirstErrorCollector(std::string filename) : filename_(std::move(filename)) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!error_.empty()) return;
    error_ = absl::StrCat(filename_, ":", line + 1, ":", column + 1, ": ", message);
  }
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  const std::string& error() const { return error_; }

 private:
  const std::string filename_;
  std::string error_;
};

// Turns field paths into "FILE:LINE:COLUMN" using the parser's location tree.
class Locator {
 public:
  Locator(std::string filename, const TextFormat::ParseInfoTree* tree)
      : filename_(std::move(filename)), tree_(tree) {}

  // The position of `field` (of the message at `path`, a list of (field, index) pairs
  // from the root), or of the closest enclosing field that was written.
  std::string Where(
      const std::vector<std::pair<const google::protobuf::FieldDescriptor*, int>>& path)
      const {
    const TextFormat::ParseInfoTree* tree = tree_;
    TextFormat::ParseLocation best(-1, -1);
    for (const auto& [field, index] : path) {
      if (tree == nullptr) break;
      TextFormat::ParseLocation loc = tree->GetLocation(field, index);
      if (loc.line >= 0) best = loc;
      tree = field->message_type() != nullptr ? tree->GetTreeForNested(field, index)
                                              : nullptr;
    }
    if (best.line < 0) return filename_;
    return absl::StrCat(filename_, ":", best.line + 1, ":", best.column + 1);
  }

 private:
  const std::string filename_;
  const TextFormat::ParseInfoTree* const tree_;
};

const google::protobuf::FieldDescriptor* Field(const google::protobuf::Descriptor* d,
                                               const char* name) {
  return d->FindFieldByName(name);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

absl::Status Invalid(const std::string& where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

// A duration setting (`name`, written at `where`): *out unchanged if `text` is empty.
absl::Status ParsePositiveDuration(const std::string& where, absl::string_view name,
                                   const std::string& text, absl::Duration* out) {
  if (text.empty()) return absl::OkStatus();
  absl::Duration value;
  if (!absl::ParseDuration(text, &value) || value <= absl::ZeroDuration()) {
    return Invalid(where, absl::StrCat(name, " '", text,
                                       "' is not a positive duration like \"30s\", "
                                       "\"15m\" or \"1h\""));
  }
  *out = value;
  return absl::OkStatus();
}

// collection_kinds: each descriptor set read (relative to the config file's directory)
// and the kinds built, so a wrong file, type or field fails at start.
absl::Status ApplyCollectionKinds(const cfg::ServerConfig& config,
                                  const std::string& filename, const Locator& loc,
                                  ServerOptions* options) {
  if (config.collection_kinds().empty()) return absl::OkStatus();
  const google::protobuf::FieldDescriptor* kinds =
      Field(cfg::ServerConfig::descriptor(), "collection_kinds");
  const google::protobuf::FieldDescriptor* file_field =
      Field(cfg::CollectionKind::descriptor(), "descriptor_set_file");
  const std::filesystem::path dir = std::filesystem::path(filename).parent_path();
  std::vector<CollectionKindSpec> specs;
  for (int i = 0; i < config.collection_kinds_size(); ++i) {
    const cfg::CollectionKind& k = config.collection_kinds(i);
    if (k.descriptor_set_file().empty() || k.message_type().empty()) {
      return Invalid(loc.Where({{kinds, i}}),
                     "a collection kind needs descriptor_set_file (protoc "
                     "--include_imports -o FILE) and message_type");
    }
    std::filesystem::path path(k.descriptor_set_file());
    if (path.is_relative() && !dir.empty()) path = dir / path;
    absl::StatusOr<std::string> bytes = ReadFile(path.string());
    if (!bytes.ok()) {
      return absl::NotFoundError(absl::StrCat(
          loc.Where({{kinds, i}, {file_field, -1}}),
          ": collection_kinds.descriptor_set_file: ", bytes.status().message()));
    }
    CollectionKindSpec& spec = specs.emplace_back();
    if (!spec.descriptor_set.ParseFromString(*bytes)) {
      return Invalid(loc.Where({{kinds, i}, {file_field, -1}}),
                     absl::StrCat("'", path.string(),
                                  "' is not a FileDescriptorSet; write it with protoc "
                                  "--include_imports -o FILE"));
    }
    spec.key = k.key();
    spec.descriptor_set_name = path.string();
    spec.message_type = k.message_type();
    spec.name_fields.assign(k.name_fields().begin(), k.name_fields().end());
    spec.scope_field = k.scope_field();
    // Built one by one so that the error points at the kind at fault.
    absl::StatusOr<std::shared_ptr<const CollectionKinds>> built =
        CollectionKinds::Create(specs);
    if (!built.ok()) return Invalid(loc.Where({{kinds, i}}), built.status().message());
    options->service.collection_kinds = *std::move(built);
  }
  return absl::OkStatus();
}

}  // namespace

bool IsLoopbackAddress(const std::string& host_port) {
  std::string host = host_port.substr(0, host_port.rfind(':'));
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
    host = host.substr(1, host.size() - 2);
  }
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.") ||
         absl::StartsWith(host, "ipv4:127.") || host == "ipv6:[::1]";
}

absl::Status ApplyServerConfigText(const std::string& text, const std::string& filename,
                                   ServerOptions* options) {
  cfg::ServerConfig config;
  TextFormat::Parser parser;
  FirstErrorCollector errors(filename);
  TextFormat::ParseInfoTree tree;
  parser.RecordErrorsTo(&errors);
  parser.WriteLocationsTo(&tree);
  if (!parser.ParseFromString(text, &config)) {
    return absl::InvalidArgumentError(
        errors.error().empty() ? absl::StrCat(filename, ": not a valid ServerConfig")
                               : errors.error());
  }
  const Locator loc(filename, &tree);
  const google::protobuf::Descriptor* root = cfg::ServerConfig::descriptor();
  auto at = [&](const char* name) { return loc.Where({{Field(root, name), -1}}); };

  if (!config.listen().empty()) {
    if (config.listen().find(':') == std::string::npos) {
      return Invalid(at("listen"), "listen must be HOST:PORT, e.g. 0.0.0.0:8470");
    }
    options->listen_address = config.listen();
  }
  if (!config.data_dir().empty()) options->data_dir = config.data_dir();
  if (!config.store().empty()) options->store = config.store();
  if (config.has_rados()) {
    const cfg::RadosConfig& r = config.rados();
    if (!r.ceph_conf().empty()) options->rados.ceph_conf = r.ceph_conf();
    if (!r.pool().empty()) options->rados.pool = r.pool();
    options->rados.rados_namespace = r.rados_namespace();
    if (!r.user().empty()) options->rados.user = r.user();
  }
  if (!config.metrics_listen().empty()) {
    if (config.metrics_listen().find(':') == std::string::npos) {
      return Invalid(at("metrics_listen"),
                     "metrics_listen must be HOST:PORT, e.g. 0.0.0.0:9464");
    }
    options->metrics_listen_address = config.metrics_listen();
  }
  options->insecure = options->insecure || config.insecure();

  // TLS: read the files now so that a wrong path fails at start.
  if (config.has_tls()) {
    const google::protobuf::FieldDescriptor* tls = Field(root, "tls");
    const google::protobuf::Descriptor* td = cfg::TlsConfig::descriptor();
    auto tls_at = [&](const char* name) {
      return loc.Where({{tls, -1}, {Field(td, name), -1}});
    };
    const cfg::TlsConfig& t = config.tls();
    if (t.cert_file().empty() != t.key_file().empty()) {
      return Invalid(loc.Where({{tls, -1}}),
                     "tls needs both cert_file and key_file (PEM), or neither");
    }
    if (t.cert_file().empty() &&
        (!t.client_ca_file().empty() || t.require_client_cert())) {
      return Invalid(loc.Where({{tls, -1}}),
                     "client certificates need TLS: set cert_file and key_file too");
    }
    if (t.require_client_cert() && t.client_ca_file().empty()) {
      return Invalid(tls_at("require_client_cert"),
                     "require_client_cert needs client_ca_file, the CAs to verify with");
    }
    struct PemFile {
      const char* field;
      const std::string& path;
      std::string* out;
    };
    for (const PemFile& f :
         {PemFile{"cert_file", t.cert_file(), &options->tls.cert_pem},
          PemFile{"key_file", t.key_file(), &options->tls.key_pem},
          PemFile{"client_ca_file", t.client_ca_file(), &options->tls.client_ca_pem}}) {
      if (f.path.empty()) continue;
      absl::StatusOr<std::string> pem = ReadFile(f.path);
      if (!pem.ok()) {
        return absl::NotFoundError(absl::StrCat(tls_at(f.field), ": tls.", f.field, ": ",
                                                pem.status().message()));
      }
      if (pem->find("-----BEGIN ") == std::string::npos) {
        return Invalid(tls_at(f.field), absl::StrCat("tls.", f.field, " '", f.path,
                                                     "' is not a PEM file"));
      }
      *f.out = std::move(*pem);
    }
    options->tls.require_client_cert = t.require_client_cert();
  }

  // Tokens: check them one by one so that the error points at the token at fault.
  const google::protobuf::FieldDescriptor* tokens = Field(root, "tokens");
  google::protobuf::RepeatedPtrField<cfg::Token> so_far;
  for (int i = 0; i < config.tokens_size(); ++i) {
    *so_far.Add() = config.tokens(i);
    absl::StatusOr<Authorizer> check = Authorizer::Create(so_far);
    if (!check.ok()) return Invalid(loc.Where({{tokens, i}}), check.status().message());
  }
  options->tokens = config.tokens();

  const google::protobuf::FieldDescriptor* limits = Field(root, "limits");
  const google::protobuf::Descriptor* ld = cfg::Limits::descriptor();
  const cfg::Limits& l = config.limits();
  if (l.max_upload_bytes() < 0) {
    return Invalid(loc.Where({{limits, -1}, {Field(ld, "max_upload_bytes"), -1}}),
                   "max_upload_bytes must be >= 0 (0 = no limit)");
  }
  // Limits whose 0 keeps the default and -1 turns them off.
  struct DefaultedLimit {
    const char* name;
    int64_t value;
    std::function<void(int64_t)> set;
  };
  for (const DefaultedLimit& d : {
           DefaultedLimit{
               "max_concurrent_uploads_per_writer", l.max_concurrent_uploads_per_writer(),
               [&](int64_t v) {
                 options->limits.max_concurrent_uploads_per_writer = static_cast<int>(v);
               }},
           DefaultedLimit{"max_open_uploads", l.max_open_uploads(),
                          [&](int64_t v) {
                            options->limits.max_open_uploads = static_cast<int>(v);
                          }},
           DefaultedLimit{"memory_budget_bytes", l.memory_budget_bytes(),
                          [&](int64_t v) { options->service.memory_budget_bytes = v; }},
       }) {
    if (d.value < -1) {
      return Invalid(
          loc.Where({{limits, -1}, {Field(ld, d.name), -1}}),
          absl::StrCat(d.name, " must be > 0, 0 (the default) or -1 (no limit)"));
    }
    if (d.value != 0) d.set(std::max<int64_t>(0, d.value));
  }
  if (l.max_meta_bytes() < 0) {
    return Invalid(loc.Where({{limits, -1}, {Field(ld, "max_meta_bytes"), -1}}),
                   "max_meta_bytes must be > 0 or 0 (the default, 128 MiB)");
  }
  if (l.max_meta_bytes() > 0) options->service.max_meta_bytes = l.max_meta_bytes();
  if (options->service.memory_budget_bytes > 0 &&
      options->service.max_meta_bytes > options->service.memory_budget_bytes /
                                            RegistryServiceOptions::kExportMemoryFactor) {
    return Invalid(loc.Where({{limits, -1}, {Field(ld, "max_meta_bytes"), -1}}),
                   absl::StrCat("max_meta_bytes (", options->service.max_meta_bytes,
                                ") must be at most memory_budget_bytes / ",
                                RegistryServiceOptions::kExportMemoryFactor, " (",
                                options->service.memory_budget_bytes /
                                    RegistryServiceOptions::kExportMemoryFactor,
                                "): exporting a graph holds about ",
                                RegistryServiceOptions::kExportMemoryFactor,
                                " times its size; raise memory_budget_bytes too"));
  }
  if (l.max_message_bytes() != 0 && l.max_message_bytes() < (4 << 20)) {
    return Invalid(loc.Where({{limits, -1}, {Field(ld, "max_message_bytes"), -1}}),
                   "max_message_bytes must be 0 (default) or at least 4194304: chunks "
                   "of up to 4 MiB must fit");
  }
  options->limits.max_upload_bytes = l.max_upload_bytes();
  if (l.max_message_bytes() > 0) options->max_message_bytes = l.max_message_bytes();
  if (l.max_concurrent_streams() < 0) {
    return Invalid(loc.Where({{limits, -1}, {Field(ld, "max_concurrent_streams"), -1}}),
                   "max_concurrent_streams must be >= 0 (0 = the default, 100)");
  }
  if (l.max_concurrent_streams() > 0) {
    options->max_concurrent_streams = l.max_concurrent_streams();
  }
  if (l.max_open_streams() < 0) {
    return Invalid(loc.Where({{limits, -1}, {Field(ld, "max_open_streams"), -1}}),
                   "max_open_streams must be >= 0 (0 = the default, 10000)");
  }
  if (l.max_open_streams() > 0) options->limits.max_open_streams = l.max_open_streams();
  if (!l.unary_deadline().empty()) {
    absl::Duration d;
    RETURN_IF_ERROR(ParsePositiveDuration(
        loc.Where({{limits, -1}, {Field(ld, "unary_deadline"), -1}}), "unary_deadline",
        l.unary_deadline(), &d));
    options->limits.unary_deadline = d;
  }

  const google::protobuf::FieldDescriptor* retention = Field(root, "retention");
  const google::protobuf::Descriptor* rd = cfg::RetentionDefaults::descriptor();
  if (config.retention().max_to_keep() < 0) {
    return Invalid(loc.Where({{retention, -1}, {Field(rd, "max_to_keep"), -1}}),
                   "max_to_keep must be >= 0 (0 keeps every step)");
  }
  if (config.retention().keep_every_n_hours() < 0) {
    return Invalid(loc.Where({{retention, -1}, {Field(rd, "keep_every_n_hours"), -1}}),
                   "keep_every_n_hours must be >= 0");
  }
  options->retention_defaults = config.retention();

  if (config.export_cache_bytes() < 0) {
    return Invalid(at("export_cache_bytes"), "export_cache_bytes must be >= 0");
  }
  if (config.export_cache_bytes() > 0) {
    options->service.export_cache_bytes =
        static_cast<size_t>(config.export_cache_bytes());
  }
  if (config.min_free_bytes() < -1) {
    return Invalid(
        at("min_free_bytes"),
        "min_free_bytes must be >= 0 (0 = the default, 256 MiB) or -1 (no check)");
  }
  if (config.min_free_bytes() != 0) {
    options->min_free_bytes = std::max<int64_t>(0, config.min_free_bytes());
  }
  if (config.worker_threads() < 0 || config.worker_threads() > 1024) {
    return Invalid(at("worker_threads"), "worker_threads must be between 1 and 1024");
  }
  if (config.worker_threads() > 0) options->worker_threads = config.worker_threads();
  if (config.http2_bdp_probe()) options->http2_bdp_probe = true;

  struct DurationField {
    const char* name;
    const std::string& text;
    absl::Duration* out;
  };
  for (const DurationField& d :
       {DurationField{"upload_ttl", config.upload_ttl(), &options->service.upload_ttl},
        DurationField{"shutdown_deadline", config.shutdown_deadline(),
                      &options->shutdown_deadline},
        DurationField{"put_idle_timeout", config.put_idle_timeout(),
                      &options->put_idle_timeout},
        DurationField{"keepalive_time", config.keepalive_time(),
                      &options->keepalive_time}}) {
    RETURN_IF_ERROR(ParsePositiveDuration(at(d.name), d.name, d.text, d.out));
  }
  return ApplyCollectionKinds(config, filename, loc, options);
}

std::string DescribeSecurity(const ServerOptions& o) {
  return absl::StrCat(
      o.tls.cert_pem.empty() ? "plaintext" : (o.tls.require_client_cert ? "mTLS" : "TLS"),
      ", ", o.tokens.empty() ? "no tokens" : absl::StrCat(o.tokens.size(), " token(s)"));
}

std::string CheckConfigSummary(const ServerOptions& o) {
  return absl::StrCat(
      "configuration OK (listen ", o.listen_address, ", ", DescribeSecurity(o),
      ", data dir ", o.data_dir, o.metrics_listen_address.empty() ? "" : ", metrics ",
      o.metrics_listen_address, ", HTTP/2 BDP probing ",
      o.http2_bdp_probe ? "on: distant clients push faster, a fast one may queue tens "
                          "of MiB per connection outside the memory budget"
                        : "off",
      ")");
}

absl::Status ApplyServerConfigFile(const std::string& path, ServerOptions* options) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) {
    return absl::NotFoundError(absl::StrCat("config file: ", text.status().message()));
  }
  return ApplyServerConfigText(*text, path, options);
}

}  // namespace mgreg
