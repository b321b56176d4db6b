// mgreg-server: flags -> ServerOptions -> BuildAndStart -> wait for SIGTERM/SIGINT ->
// Shutdown(deadline).
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "server/server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:8470",
          "host:port for the gRPC API; port 0 picks a free port");
ABSL_FLAG(std::string, data_dir, "./data", "RocksDB data directory (created if missing)");
ABSL_FLAG(bool, in_memory, false, "keep everything in memory; nothing survives a restart");
ABSL_FLAG(int, worker_threads, 8, "threads for commits, reads and exports");
ABSL_FLAG(absl::Duration, upload_ttl, absl::Hours(1),
          "abort uploads idle for longer than this");
ABSL_FLAG(int64_t, export_cache_bytes, 256 << 20,
          "bytes of filtered graphs kept in the export cache (0 disables it)");
ABSL_FLAG(absl::Duration, shutdown_deadline, absl::Seconds(30),
          "on SIGTERM, how long in-flight calls may take before they are cancelled");

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

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "mgreg-server --data-dir DIR --listen HOST:PORT\n"
      "Serves the mgreg registry of TensorFlow checkpoints and MetaGraphs.");
  std::vector<std::string> args = KebabToSnakeFlags(argc, argv);
  std::vector<char*> arg_ptrs;
  for (std::string& a : args) arg_ptrs.push_back(a.data());
  absl::ParseCommandLine(static_cast<int>(arg_ptrs.size()), arg_ptrs.data());

  // Block the stop signals before any thread starts, then wait for them here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  mgreg::ServerOptions options;
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.in_memory = absl::GetFlag(FLAGS_in_memory);
  options.worker_threads = absl::GetFlag(FLAGS_worker_threads);
  options.service.upload_ttl = absl::GetFlag(FLAGS_upload_ttl);
  options.service.export_cache_bytes =
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_export_cache_bytes)));

  auto server = mgreg::RegistryServer::BuildAndStart(options);
  if (!server.ok()) {
    mgreg::LogError("mgreg-server could not start: ", server.status().message());
    return 1;
  }
  // The ready line scripts and tests wait for; stdout, flushed.
  std::printf("mgreg-server listening on %s (%s)\n", (*server)->address().c_str(),
              options.in_memory ? "in memory" : ("data dir " + options.data_dir).c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  mgreg::LogInfo("received ", sig == SIGTERM ? "SIGTERM" : "SIGINT", ", shutting down");
  (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_deadline));
  mgreg::LogInfo("mgreg-server stopped");
  return 0;
}
