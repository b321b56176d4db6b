// mgreg-server: flags -> ServerOptions -> BuildAndStart -> wait for SIGTERM/SIGINT ->
// Shutdown(deadline).
#include <signal.h>

#include <cstdio>
#include <string>

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

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "mgreg-server --data-dir DIR --listen HOST:PORT\n"
      "Serves the mgreg registry of TensorFlow checkpoints and MetaGraphs.");
  absl::ParseCommandLine(argc, argv);

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
