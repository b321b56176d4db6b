// sustained (issue 17): mgreg-server (RocksDB, pinned to CPU 0) takes STEPS pushes of
// fresh bytes (Client::Push of a checkpoint: index + 2 shards of STEP_MIB / 2), with
// retention max_to_keep 3 on the model, so every push from the fourth on also deletes
// the oldest step. Prints:
//   sustained: push throughput of the last 10 steps / the first 10; target >= 0.9.
//   sustained-space-retention: disk used by the data dir (allocated blocks) / live
//     (deduplicated) chunk bytes the server reports, kSettle after the last push;
//     target <= 1.3.
//   sustained-space-after-deletes: the same 60 s after deleting all but the newest
//     step; target <= 1.3.
//
//   sustained_bench [--steps N] [--step-mib M]   (defaults 40 and 256)
// The checkpoints are written into the bench's temp dir before each push (not timed).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "client/client.h"
#include "storage/testing/disk_usage.h"

namespace mgreg::bench {
namespace {

constexpr int kKeep = 3;
constexpr int kWindow = 10;
constexpr std::chrono::seconds kSettle(5);
constexpr std::chrono::seconds kAfterDeletes(60);

int64_t LiveBytes(const std::string& metrics) {
  return static_cast<int64_t>(
      MetricValue(HttpGet(metrics, "/metrics"), "mgreg_store_stored_bytes"));
}

int Main(int argc, char** argv) {
  int steps = 40;
  int64_t step_mib = 256;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--steps") steps = std::atoi(argv[i + 1]);
    if (flag == "--step-mib") step_mib = std::atoll(argv[i + 1]);
  }
  if (steps < 2 * kWindow || step_mib < 2) {
    Die(absl::StrCat("--steps must be at least ", 2 * kWindow,
                     " and --step-mib at least 2"));
  }
  PinToCpu(1);
  const int64_t shard_bytes = (step_mib << 20) / 2;
  const std::string tmp = MakeTempDir("sustained");
  // The checkpoint being pushed, and the store holding up to kKeep + 1 steps (and
  // garbage not given back yet).
  RequireFreeSpace(tmp, (kKeep + 4) * 2 * shard_bytes + (1ll << 30));
  const std::string ckpt_dir = absl::StrCat(tmp, "/ckpt");
  const std::string data_dir = absl::StrCat(tmp, "/data");
  std::filesystem::create_directories(ckpt_dir);

  auto server = StartServer(data_dir, {"--metrics-listen", "127.0.0.1:0"});
  const std::string metrics = MetricsAddress(*server);
  std::unique_ptr<Client> client = ConnectClient(server->address());
  const std::string model = "bench/sustained";
  CheckOk(client->SetRetention(model, kKeep, 0, /*allow_missing=*/true).status(),
          "setting retention");

  std::vector<double> mbs, cpu_per_gib;
  for (int step = 1; step <= steps; ++step) {
    const std::string prefix =
        WriteBenchCheckpoint(ckpt_dir, "model.ckpt", step,
                             static_cast<uint64_t>(step) * 7919, 2, shard_bytes, 8 << 20);
    const int64_t bytes = CheckpointBytes(prefix);
    const double cpu0 = CpuSeconds(server->pid());
    const double start = Now();
    absl::StatusOr<v1::Checkpoint> pushed = client->Push(model, prefix, PushOptions());
    const double seconds = Now() - start;
    const double cpu = CpuSeconds(server->pid()) - cpu0;
    CheckOk(pushed.status(), absl::StrCat("push of step ", step));
    if (pushed->total_bytes() != bytes) {
      Die(absl::StrCat("step ", step, ": the server committed ", pushed->total_bytes(),
                       " bytes, expected ", bytes));
    }
    mbs.push_back(bytes / seconds / kMB);
    cpu_per_gib.push_back(cpu / (bytes / (kMiB * 1024)));
    std::printf("step %d: %.0f MB/s, server %.2f CPU-s/GiB, %lld MiB on disk\n", step,
                mbs.back(), cpu_per_gib.back(),
                static_cast<long long>(DiskBytes(data_dir) >> 20));
    std::fflush(stdout);
    for (const std::string& f : CheckpointFiles(prefix)) std::filesystem::remove(f);
  }
  std::this_thread::sleep_for(kSettle);
  const int64_t disk_run = DiskBytes(data_dir), live_run = LiveBytes(metrics);

  absl::StatusOr<v1::Model> m = client->GetModel(model);
  CheckOk(m.status(), "reading the model");
  for (int64_t step = m->latest_step() - 1; step > 0; --step) {
    absl::StatusOr<int64_t> deleted = client->DeleteCheckpoint(model, step);
    if (!deleted.ok() && !absl::IsNotFound(deleted.status())) {
      CheckOk(deleted.status(), absl::StrCat("deleting step ", step));
    }
  }
  std::this_thread::sleep_for(kAfterDeletes);
  const int64_t disk_one = DiskBytes(data_dir), live_one = LiveBytes(metrics);
  server.reset();
  RemoveTree(tmp);

  double first = 0, last = 0;
  for (int i = 0; i < kWindow; ++i) {
    first += mbs[static_cast<size_t>(i)];
    last += mbs[mbs.size() - 1 - static_cast<size_t>(i)];
  }
  const std::vector<double> first_cpu(cpu_per_gib.begin(), cpu_per_gib.begin() + kWindow);
  const std::vector<double> last_cpu(cpu_per_gib.end() - kWindow, cpu_per_gib.end());
  PrintResult(
      "sustained", last / first, 0.9, true,
      absl::StrFormat("mean push of the last %d steps %.0f MB/s, of the first %d "
                      "%.0f MB/s; server %.2f vs %.2f CPU-s/GiB (medians); %d "
                      "steps of %d MiB, max_to_keep %d",
                      kWindow, last / kWindow, kWindow, first / kWindow, Median(last_cpu),
                      Median(first_cpu), steps, static_cast<int>(step_mib), kKeep));
  PrintResult(
      "sustained-space-retention",
      static_cast<double>(disk_run) / static_cast<double>(live_run), 1.3, false,
      absl::StrFormat("%lld MiB on disk, %lld MiB live, %llds after the last push",
                      static_cast<long long>(disk_run >> 20),
                      static_cast<long long>(live_run >> 20),
                      static_cast<long long>(kSettle.count())));
  PrintResult("sustained-space-after-deletes",
              static_cast<double>(disk_one) / static_cast<double>(live_one), 1.3, false,
              absl::StrFormat("all but the newest step deleted, %llds later: %lld MiB on "
                              "disk, %lld MiB live",
                              static_cast<long long>(kAfterDeletes.count()),
                              static_cast<long long>(disk_one >> 20),
                              static_cast<long long>(live_one >> 20)));
  return 0;
}

}  // namespace
}  // namespace mgreg::bench

int main(int argc, char** argv) { return mgreg::bench::Main(argc, argv); }
