// mgreg-server: flags (+ config file) -> ServerOptions -> BuildAndStart -> wait for
// SIGTERM/SIGINT -> Shutdown(deadline).
#include <malloc.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/mutex_mode.h"
#include "common/sigpipe.h"
#include "server/config.h"
#include "server/server.h"

// Flags left at their "unset" value keep what the config file (or the built-in
// default) says; flags given on the command line win over the config file.
ABSL_FLAG(
    std::string, listen, "",
    "host:port for the gRPC API (default 127.0.0.1:8470); port 0 picks a free port");
ABSL_FLAG(std::string, data_dir, "", "RocksDB data directory (default ./data)");
ABSL_FLAG(std::string, metrics_listen, "",
          "host:port for GET /metrics (Prometheus) and the web pages; port 0 picks a "
          "free port; "
          "default: no metrics endpoint");
ABSL_FLAG(std::string, config, "",
          "server config file, protobuf text format (mgreg.config.v1.ServerConfig)");
ABSL_FLAG(bool, check_config, false,
          "check the flags and the config file (TLS files included), print the result "
          "and exit: 0 if the server would start, 1 if not");
ABSL_FLAG(bool, insecure, false,
          "allow plaintext gRPC on a non-loopback address (no TLS configured)");
ABSL_FLAG(bool, in_memory, false,
          "keep everything in memory; nothing survives a restart");
ABSL_FLAG(std::string, store, "",
          "rocksdb (default: --data-dir), memory, or rados (--ceph-conf, --rados-pool, "
          "--rados-namespace): a Ceph pool any number of servers share");
ABSL_FLAG(std::string, ceph_conf, "", "the Ceph cluster's ceph.conf (--store rados)");
ABSL_FLAG(std::string, rados_pool, "", "RADOS pool (--store rados; default mgreg)");
ABSL_FLAG(std::string, rados_namespace, "",
          "RADOS namespace, one registry per namespace (--store rados; default none)");
ABSL_FLAG(std::string, rados_user, "",
          "RADOS user (--store rados; default client.admin)");
ABSL_FLAG(
    absl::Duration, rados_gc_period, absl::ZeroDuration(),
    "how often one server collects garbage in the pool (--store rados; default 1m)");
ABSL_FLAG(absl::Duration, rados_dead_after, absl::ZeroDuration(),
          "end the upload holds of a server missing from the catalog's watchers this "
          "long (--store rados; default 2m)");
ABSL_FLAG(absl::Duration, rados_session_expiry, absl::ZeroDuration(),
          "drop upload sessions no server wrote for this long, with their staged chunks "
          "(--store rados; default 2h)");
ABSL_FLAG(int, worker_threads, 0, "threads for commits, reads and exports (default 8)");
ABSL_FLAG(absl::Duration, upload_ttl, absl::ZeroDuration(),
          "abort uploads idle for longer than this (default 1h)");
ABSL_FLAG(absl::Duration, put_idle_timeout, absl::ZeroDuration(),
          "end a PutFile stream that sends nothing for this long, releasing its file "
          "(default 2m)");
ABSL_FLAG(absl::Duration, keepalive_time, absl::ZeroDuration(),
          "ping connections idle this long; close them without an answer in 20s "
          "(default 1m)");
ABSL_FLAG(int64_t, export_cache_bytes, -1,
          "bytes of filtered graphs kept in the export cache (default 256 MiB; 0 "
          "disables it)");
ABSL_FLAG(int64_t, min_free_bytes, -1,
          "refuse new uploaded bytes while the data dir's disk has less than this free "
          "(default 256 MiB; at least 16 MiB, what RocksDB needs free to resume by "
          "itself after a full disk; 0 turns the check off)");
ABSL_FLAG(int64_t, event_window, 0,
          "watch events kept for watchers resuming from a revision (default 100000)");
ABSL_FLAG(bool, http2_bdp_probe, false,
          "let gRPC grow each connection's HTTP/2 window (BDP probing): distant clients "
          "push faster, but a fast client may keep tens of MiB per connection outside "
          "the memory budget (default off; --http2-bdp-probe=false overrides the config "
          "file)");
ABSL_FLAG(absl::Duration, shutdown_deadline, absl::ZeroDuration(),
          "on SIGTERM, how long in-flight calls may take before they are cancelled "
          "(default 30s)");

namespace {

// Flags are written in kebab-case (--data-dir, DESIGN §8); absl names them with
// underscores. Rewrites "--data-dir=x" to "--data_dir=x" before parsing.
std::vector<std::string> KebabToSnakeFlags(int argc, char** argv) {
  std::vector<std::string> out(argv, argv + argc);
  for (size_t i = 1; i < out.size(); ++i) {
    std::string& a = out[i];
    if (a == "--") break;
    if (a.rfind("--", 0) != 0) continue;
    const size_t end = std::min(a.find('='), a.size());
    std::replace(a.begin() + 2, a.begin() + static_cast<std::ptrdiff_t>(end), '-', '_');
  }
  return out;
}

// Whether bool flag `name` (snake_case) is among `args` in any form absl accepts
// (--name, --name=V, --noname, one dash too) before a "--". Flags read from a
// --flagfile are not seen.
bool BoolFlagGiven(const std::vector<std::string>& args, const std::string& name) {
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--") break;
    std::string a = args[i].substr(0, args[i].find('='));
    if (a.rfind("--", 0) == 0) {
      a.erase(0, 2);
    } else if (a.rfind("-", 0) == 0) {
      a.erase(0, 1);
    } else {
      continue;
    }
    if (a == name || a == "no" + name) return true;
  }
  return false;
}

// Config file first, then the flags given on the command line.
absl::Status BuildOptions(bool given_http2_bdp_probe, mgreg::ServerOptions* options) {
  if (const std::string path = absl::GetFlag(FLAGS_config); !path.empty()) {
    absl::Status s = mgreg::ApplyServerConfigFile(path, options);
    if (!s.ok()) return s;
  }
  if (auto v = absl::GetFlag(FLAGS_listen); !v.empty()) options->listen_address = v;
  if (auto v = absl::GetFlag(FLAGS_data_dir); !v.empty()) options->data_dir = v;
  if (auto v = absl::GetFlag(FLAGS_metrics_listen); !v.empty()) {
    options->metrics_listen_address = v;
  }
  options->insecure = options->insecure || absl::GetFlag(FLAGS_insecure);
  options->in_memory = absl::GetFlag(FLAGS_in_memory);
  if (auto v = absl::GetFlag(FLAGS_store); !v.empty()) options->store = v;
  if (auto v = absl::GetFlag(FLAGS_ceph_conf); !v.empty()) options->rados.ceph_conf = v;
  if (auto v = absl::GetFlag(FLAGS_rados_pool); !v.empty()) options->rados.pool = v;
  if (auto v = absl::GetFlag(FLAGS_rados_namespace); !v.empty()) {
    options->rados.rados_namespace = v;
  }
  if (auto v = absl::GetFlag(FLAGS_rados_user); !v.empty()) options->rados.user = v;
  for (const auto& [flag, value, field] :
       {std::tuple{"--rados-gc-period", absl::GetFlag(FLAGS_rados_gc_period),
                   &options->rados.gc_period},
        std::tuple{"--rados-dead-after", absl::GetFlag(FLAGS_rados_dead_after),
                   &options->rados.dead_after},
        std::tuple{"--rados-session-expiry", absl::GetFlag(FLAGS_rados_session_expiry),
                   &options->rados.session_expiry}}) {
    if (value < absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " must be a positive duration, e.g. 30s or 5m"));
    }
    if (value > absl::ZeroDuration()) *field = value;
  }
  if (int v = absl::GetFlag(FLAGS_worker_threads); v != 0) options->worker_threads = v;
  if (auto v = absl::GetFlag(FLAGS_upload_ttl); v != absl::ZeroDuration()) {
    options->service.upload_ttl = v;
  }
  if (auto v = absl::GetFlag(FLAGS_put_idle_timeout); v != absl::ZeroDuration()) {
    options->put_idle_timeout = v;
  }
  if (auto v = absl::GetFlag(FLAGS_keepalive_time); v != absl::ZeroDuration()) {
    options->keepalive_time = v;
  }
  if (int64_t v = absl::GetFlag(FLAGS_min_free_bytes); v >= 0)
    options->min_free_bytes = v;
  if (int64_t v = absl::GetFlag(FLAGS_export_cache_bytes); v >= 0) {
    options->service.export_cache_bytes = static_cast<size_t>(v);
  }
  if (int64_t v = absl::GetFlag(FLAGS_event_window); v != 0) {
    if (v < 1) return absl::InvalidArgumentError("--event-window must be at least 1");
    options->event_window = v;
  }
  if (auto v = absl::GetFlag(FLAGS_shutdown_deadline); v != absl::ZeroDuration()) {
    options->shutdown_deadline = v;
  }
  // A bool flag has no "unset" value: it wins over the file only when given.
  if (given_http2_bdp_probe)
    options->http2_bdp_probe = absl::GetFlag(FLAGS_http2_bdp_probe);
  return mgreg::ValidateServerOptions(*options);
}

}  // namespace

int main(int argc, char** argv) {
  // One malloc arena for every thread, set before any thread starts. glibc gives each
  // thread that allocates its own arena (up to 8 per core), and each kept the 1 MiB
  // message and memtable blocks its thread had freed: pushing 2 GiB, the server's peak
  // RSS was 150-170 MiB with the default arenas and ~105 MiB with one, at no more CPU
  // per GiB (bench/push_bench, bench/memory_bench; bench/RESULTS.md, issue 17).
  mallopt(M_ARENA_MAX, 1);
  // A peer that closes its end is an error, not the server's death (common/sigpipe.h:
  // librados' admin socket writes with write(2)).
  mgreg::IgnoreSigpipe();
  // Debian's abseil checks lock order on every Lock and aborts on a possible cycle
  // (common/mutex_mode.h).
  mgreg::TurnOffMutexDeadlockDetection();
  absl::SetProgramUsageMessage(
      "mgreg-server [--config FILE] [--data-dir DIR] [--listen HOST:PORT]\n"
      "             [--store rocksdb|memory|rados --ceph-conf FILE --rados-pool POOL\n"
      "              --rados-namespace NS [--rados-gc-period D --rados-dead-after D\n"
      "              --rados-session-expiry D]]\n"
      "             [--metrics-listen HOST:PORT] [--insecure] [--check-config]\n"
      "             [--http2-bdp-probe]\n"
      "Serves the mgreg registry of TensorFlow checkpoints and MetaGraphs.");
  std::vector<std::string> args = KebabToSnakeFlags(argc, argv);
  std::vector<char*> arg_ptrs;
  for (std::string& a : args) arg_ptrs.push_back(a.data());
  absl::ParseCommandLine(static_cast<int>(arg_ptrs.size()), arg_ptrs.data());

  mgreg::ServerOptions options;
  if (absl::Status s = BuildOptions(BoolFlagGiven(args, "http2_bdp_probe"), &options);
      !s.ok()) {
    mgreg::LogError("mgreg-server: invalid configuration: ", s.message());
    return 1;
  }
  if (absl::GetFlag(FLAGS_check_config)) {
    std::printf("mgreg-server: %s\n", mgreg::CheckConfigSummary(options).c_str());
    return 0;
  }

  // Block the stop signals before any thread starts, then wait for them here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto server = mgreg::RegistryServer::BuildAndStart(options);
  if (!server.ok()) {
    mgreg::LogError("mgreg-server could not start: ", server.status().message());
    return 1;
  }
  if (options.tls.cert_pem.empty() && options.tokens.empty() && !options.insecure) {
    mgreg::LogWarning("no TLS and no tokens configured: serving on loopback only (",
                      (*server)->address(), "); see docs/operations.md 'Security'");
  } else if (options.tls.cert_pem.empty() && options.insecure) {
    mgreg::LogWarning("--insecure: serving plaintext gRPC on ", (*server)->address(),
                      "; tokens travel unencrypted");
  }
  mgreg::LogInfo("mgreg-server: ", mgreg::DescribeSecurity(options),
                 options.http2_bdp_probe ? ", HTTP/2 BDP probing on" : "");
  // The ready line scripts and tests wait for; stdout, flushed. Nothing else goes to
  // stdout after it.
  std::string where =
      options.store == "rados"
          ? absl::StrCat("RADOS pool ", options.rados.pool,
                         options.rados.rados_namespace.empty()
                             ? std::string()
                             : absl::StrCat(" namespace ", options.rados.rados_namespace),
                         " of ", options.rados.ceph_conf)
      : options.in_memory || options.store == "memory"
          ? std::string("in memory")
          : absl::StrCat("data dir ", options.data_dir);
  if (!(*server)->metrics_address().empty()) {
    absl::StrAppend(&where, "; metrics on http://", (*server)->metrics_address(),
                    "/metrics");
  }
  std::printf("mgreg-server listening on %s (%s)\n", (*server)->address().c_str(),
              where.c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  mgreg::LogInfo("received ", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                 ", draining (deadline ", absl::FormatDuration(options.shutdown_deadline),
                 ")");
  (*server)->Shutdown(options.shutdown_deadline);
  mgreg::LogInfo("mgreg-server stopped");
  return 0;
}
