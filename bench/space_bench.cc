// Space that comes back (issue 17's space target, ../shared/PERF.md), run by hand:
//   space_bench [DIR] [STEPS] [STEP_MIB]
// DIR (default $TMPDIR or /tmp) gets a scratch directory that is removed at the end.
//
// A RocksDB store takes STEPS (default 40) steps of STEP_MIB (default 256) MiB of fresh
// bytes, as 4 MiB chunks, with retention keeping the newest 3 (each push is followed
// by the retention run that deletes the oldest step beyond 3). Then:
// space-retention: disk used by the data dir (allocated blocks) / live bytes
//   (deduplicated chunk bytes, GetStats), kSettle after the last retention run;
//   target <= 1.3.
// space-after-deletes: the same 60 s after deleting all but the newest step;
//   target <= 1.3.
// Also printed: push throughput of the last 10 steps / the first 10 (the sustained
// scenario's figure; its target, >= 0.9, needs the full 40 x 256 MiB).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "common/sha256.h"
#include "storage/store.h"
#include "storage/testing/disk_usage.h"

namespace mgreg {
namespace {

namespace fs = std::filesystem;

constexpr size_t kChunk = 4u << 20;
constexpr int kKeep = 3;
constexpr std::chrono::seconds kSettle(5);
constexpr std::chrono::seconds kAfterDeletes(60);

// Fresh pseudo-random bytes, cheap to make (xorshift over 64-bit words).
void Fill(std::string* out, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i + 8 <= out->size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(&(*out)[i], &x, 8);
  }
}

// Stages `bytes` fresh bytes as one file of `step` and commits; returns the seconds.
double PushStep(Store& store, int64_t step, size_t bytes) {
  const double start = bench::Now();
  auto area = store.NewStagingArea();
  storage::BlobRecord blob;
  Sha256 whole;
  std::string chunk(kChunk, '\0');
  for (size_t off = 0; off < bytes; off += kChunk) {
    chunk.resize(std::min(kChunk, bytes - off));
    Fill(&chunk, static_cast<uint64_t>(step) * 1000003 + off / kChunk);
    storage::ChunkRef* ref = blob.add_chunks();
    ref->set_sha256(Sha256Raw(chunk));
    ref->set_size(static_cast<uint32_t>(chunk.size()));
    whole.Update(chunk);
    absl::Status s = area->PutChunk(*ref, chunk);
    if (!s.ok()) {
      std::fprintf(stderr, "staging step %lld: %s\n", static_cast<long long>(step),
                   s.ToString().c_str());
      std::exit(1);
    }
  }
  const std::string hex = whole.HexDigest();
  blob.set_sha256(hex);
  blob.set_size(static_cast<int64_t>(bytes));
  CommitRequest req;
  req.record.set_model("m");
  req.record.set_step(step);
  req.record.set_basename("model.ckpt");
  storage::FileRecord* file = req.record.add_files();
  file->set_name("data-00000-of-00001");
  file->set_size(static_cast<int64_t>(bytes));
  file->set_sha256(hex);
  req.new_blobs.push_back(blob);
  auto committed = store.Commit(req, area.get());
  if (!committed.ok()) {
    std::fprintf(stderr, "committing step %lld: %s\n", static_cast<long long>(step),
                 committed.status().ToString().c_str());
    std::exit(1);
  }
  return bench::Now() - start;
}

int64_t LiveBytes(Store& store) {
  auto stats = store.GetStats();
  return stats.ok() ? stats->chunk_bytes : -1;
}

int Run(int argc, char** argv) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string base = argc > 1 ? argv[1] : (tmp != nullptr ? tmp : "/tmp");
  const int steps = argc > 2 ? std::atoi(argv[2]) : 40;
  const size_t step_bytes = (argc > 3 ? std::atoll(argv[3]) : 256) * (size_t{1} << 20);
  if (steps < kKeep + 1 || step_bytes == 0) {
    std::fprintf(stderr, "usage: space_bench [DIR] [STEPS > %d] [STEP_MIB > 0]\n", kKeep);
    return 2;
  }
  const std::string dir = absl::StrCat(base, "/space_bench-", getpid());
  RocksDbStoreOptions options;
  options.path = dir;
  auto opened = OpenRocksDbStore(options);
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.status().ToString().c_str());
    return 1;
  }
  Store& store = **opened;

  std::vector<double> seconds;
  for (int step = 1; step <= steps; ++step) {
    seconds.push_back(PushStep(store, step, step_bytes));
    if (step > kKeep) {
      auto r = store.ApplyRetention("m", {step - kKeep}, {}, 0);
      if (!r.ok()) {
        std::fprintf(stderr, "retention: %s\n", r.status().ToString().c_str());
        return 1;
      }
    }
  }
  std::this_thread::sleep_for(kSettle);
  const int64_t disk_run = DiskBytes(dir), live_run = LiveBytes(store);

  for (int step = steps - kKeep + 1; step < steps; ++step) {
    if (!store.DeleteCheckpoint("m", step).ok()) return 1;
  }
  std::this_thread::sleep_for(kAfterDeletes);
  const int64_t disk_one = DiskBytes(dir), live_one = LiveBytes(store);

  const int window = std::min(10, steps / 2);
  double first = 0, last = 0;
  for (int i = 0; i < window; ++i) {
    first += seconds[i];
    last += seconds[seconds.size() - 1 - i];
  }
  bench::PrintResult(
      "space-retention", static_cast<double>(disk_run) / static_cast<double>(live_run),
      1.3, false,
      absl::StrFormat(
          "%d steps of %d MiB, keep %d; %lld MiB on disk, %lld MiB live, %llds "
          "after the last retention run",
          steps, static_cast<int>(step_bytes >> 20), kKeep,
          static_cast<long long>(disk_run >> 20), static_cast<long long>(live_run >> 20),
          static_cast<long long>(kSettle.count())));
  bench::PrintResult(
      "space-after-deletes",
      static_cast<double>(disk_one) / static_cast<double>(live_one), 1.3, false,
      absl::StrFormat("all but one step deleted, %llds later: %lld MiB on disk, %lld MiB "
                      "live",
                      static_cast<long long>(kAfterDeletes.count()),
                      static_cast<long long>(disk_one >> 20),
                      static_cast<long long>(live_one >> 20)));
  std::printf("sustained: push throughput of the last %d steps / the first %d = %.2f\n",
              window, window, first / last);
  opened->reset();
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}

}  // namespace
}  // namespace mgreg

int main(int argc, char** argv) { return mgreg::Run(argc, argv); }
