// RADOS store benchmarks (issue 14, Performance; ../shared/PERF.md), run by hand against
// a Ceph cluster (scripts/ceph-dev.sh start DIR):
//   rados_bench CEPH_CONF [SCRATCH_DIR]
// Through the Store (storage/store.h), one process, each "replica" a store with its own
// librados connection; no gRPC. MGREG_BENCH_MB sets the big step (default 1024 MiB).
//
// rados-push-1g / rados-restore-1g: stage the step as 4 MiB chunks and commit it, then
//   read every chunk back; RADOS throughput / RocksDB throughput (SCRATCH_DIR) in the
//   same run; target >= 0.7.
// rados-commit-latency: p50 and p99 of small commits (one new 4 KiB file), one writer,
//   then four writers on four stores at once (absolute, ms).
// rados-latest-qps: GetLatest calls per second over two stores / over one, each with
//   one reader thread; target >= 1.5 (served from each store's memory; before, every
//   call was a read of the one OSD).
// rados-event-lag: from Commit returning on store A to store B's listener hearing the
//   event, p99 over 200 commits; target <= 50 ms.
// rados-grpc-push-1g / rados-grpc-restore-1g: the same through mgreg-server processes
//   (pinned to CPU 0, the client to CPU 1): Client::Push and Client::Restore of a real
//   TensorFlow checkpoint of MGREG_BENCH_MB MiB (2 shards) through one RADOS replica and
//   through a RocksDB server, interleaved over MGREG_BENCH_PAIRS pairs (default 3); the
//   median of per-pair throughput ratios, and each server's CPU-s per GiB.
//   MGREG_BENCH_ONLY=grpc runs only this.
// rados-big-step: one step of MGREG_BENCH_BIG_CHUNKS (default 20000) chunks of 1 KiB:
//   its transaction (~85 bytes a chunk) goes through a tx. object; the commit's seconds
//   and per-chunk cost (absolute), to extrapolate to 100k chunks (a 100 GB step at
//   1 MiB chunks). MGREG_BENCH_ONLY=big runs only this.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "bench/bench_util.h"
#include "client/client.h"
#include "common/sha256.h"
#include "storage/rados/rados_store.h"
#include "storage/store.h"

namespace mgreg {
namespace {

using bench::CheckOk;
using bench::MakeTempDir;
using bench::Now;
using bench::Percentile;
using bench::PrintAbsoluteResult;
using bench::PrintResult;
using bench::RemoveTree;

constexpr size_t kChunk = 4u << 20;

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

// One file made of `chunks` (raw bytes each), as a commit request of (model, step).
CommitRequest Request(const std::string& model, int64_t step,
                      const std::vector<std::string>& chunks) {
  Sha256 whole;
  storage::BlobRecord blob;
  int64_t size = 0;
  for (const std::string& c : chunks) {
    whole.Update(c);
    storage::ChunkRef* ref = blob.add_chunks();
    ref->set_sha256(Sha256Raw(c));
    ref->set_size(static_cast<uint32_t>(c.size()));
    size += static_cast<int64_t>(c.size());
  }
  blob.set_sha256(whole.HexDigest());
  blob.set_size(size);
  CommitRequest req;
  req.record.set_model(model);
  req.record.set_step(step);
  req.record.set_basename("model.ckpt");
  storage::FileRecord* f = req.record.add_files();
  f->set_name("data-00000-of-00001");
  f->set_size(size);
  f->set_sha256(blob.sha256());
  req.new_blobs.push_back(blob);
  return req;
}

void Commit(Store& store, const std::string& model, int64_t step,
            const std::vector<std::string>& chunks) {
  auto area = store.NewStagingArea();
  for (const std::string& c : chunks) {
    storage::ChunkRef ref;
    ref.set_sha256(Sha256Raw(c));
    ref.set_size(static_cast<uint32_t>(c.size()));
    CheckOk(area->PutChunk(ref, c), "PutChunk");
  }
  CheckOk(store.Commit(Request(model, step, chunks), area.get()).status(), "Commit");
}

std::unique_ptr<Store> OpenRados(const std::string& conf, const std::string& ns) {
  RadosStoreOptions o;
  o.ceph_conf = conf;
  o.pool = "mgreg";
  o.rados_namespace = ns;
  auto s = OpenRadosStore(o);
  CheckOk(s.status(), "OpenRadosStore");
  return std::move(*s);
}

// Seconds to push, and to restore, `mb` MiB as one step.
std::pair<double, double> PushRestore(Store& store, size_t mb) {
  std::vector<std::string> chunks;
  for (size_t i = 0; i < mb * (1u << 20) / kChunk; ++i)
    chunks.push_back(RandomBytes(kChunk, i));
  double t0 = Now();
  Commit(store, "big", 1, chunks);
  const double push = Now() - t0;
  t0 = Now();
  auto record = store.GetLatest("big");
  CheckOk(record.status(), "GetLatest");
  auto blob = store.GetBlob(record->files(0).sha256());
  CheckOk(blob.status(), "GetBlob");
  for (const storage::ChunkRef& ref : blob->chunks()) {
    CheckOk(store.ReadChunk(ref).status(), "ReadChunk");
  }
  return {push, Now() - t0};
}

std::vector<double> SmallCommits(Store& store, const std::string& model, int n,
                                 uint64_t seed) {
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    const std::vector<std::string> chunks = {RandomBytes(4096, seed * 100000 + i)};
    const double t0 = Now();
    Commit(store, model, i + 1, chunks);
    ms.push_back((Now() - t0) * 1e3);
  }
  return ms;
}

// GetLatest calls per second, one reader thread per store (so two stores use the two
// cores of this machine, as two replicas on two hosts would use theirs).
double LatestQps(const std::vector<Store*>& stores, double seconds) {
  std::atomic<int64_t> calls{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (Store* s : stores) {
    for (int t = 0; t < 1; ++t) {
      readers.emplace_back([&, s] {
        while (!stop.load()) {
          CheckOk(s->GetLatest("small-0").status(), "GetLatest");
          ++calls;
        }
      });
    }
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (std::thread& t : readers) t.join();
  return static_cast<double>(calls.load()) / seconds;
}

// Push and restore of one checkpoint through `server`: seconds, and server CPU-s.
struct GrpcRun {
  double push_s = 0, restore_s = 0, push_cpu = 0, restore_cpu = 0;
};

GrpcRun PushRestoreThrough(bench::ChildProcess& server, const std::string& prefix,
                           const std::string& restore_dir, int64_t step) {
  std::unique_ptr<Client> client = bench::ConnectClient(server.address());
  GrpcRun run;
  double cpu0 = bench::CpuSeconds(server.pid());
  double t0 = Now();
  absl::StatusOr<v1::Checkpoint> pushed =
      client->Push("bench/grpc", prefix, PushOptions());
  run.push_s = Now() - t0;
  run.push_cpu = bench::CpuSeconds(server.pid()) - cpu0;
  CheckOk(pushed.status(), "push");
  if (pushed->step() != step) bench::Die("pushed the wrong step");
  cpu0 = bench::CpuSeconds(server.pid());
  t0 = Now();
  CheckOk(client->Restore("bench/grpc", restore_dir, RestoreOptions()).status(),
          "restore");
  run.restore_s = Now() - t0;
  run.restore_cpu = bench::CpuSeconds(server.pid()) - cpu0;
  RemoveTree(restore_dir);
  return run;
}

void GrpcPushRestore(const std::string& conf, const std::string& ns, size_t mb,
                     int pairs) {
  bench::PinToCpu(1);
  const std::string tmp = MakeTempDir("rados-grpc");
  const int64_t shard_bytes = static_cast<int64_t>(mb) << 19;  // two shards
  bench::RequireFreeSpace(tmp, 6 * shard_bytes * (pairs + 2));
  std::filesystem::create_directories(tmp + "/ckpt");
  auto rocks = bench::StartServer(tmp + "/rocks");
  auto rados = bench::StartServer(
      tmp + "/unused", {"--store", "rados", "--ceph-conf", conf, "--rados-pool", "mgreg",
                        "--rados-namespace", ns + "-grpc"});
  std::vector<double> push_ratio, restore_ratio, rocks_push, rados_push, rocks_restore,
      rados_restore, rocks_cpu, rados_cpu;
  const double gib = 2.0 * static_cast<double>(shard_bytes) / (1 << 30);
  for (int pair = 1; pair <= pairs; ++pair) {
    const std::string prefix =
        bench::WriteBenchCheckpoint(tmp + "/ckpt", "model.ckpt", pair,
                                    static_cast<uint64_t>(pair), 2, shard_bytes, 8 << 20);
    const GrpcRun a = PushRestoreThrough(*rocks, prefix, tmp + "/restored", pair);
    const GrpcRun b = PushRestoreThrough(*rados, prefix, tmp + "/restored", pair);
    for (const std::string& f : bench::CheckpointFiles(prefix)) RemoveTree(f);
    push_ratio.push_back(a.push_s / b.push_s);
    restore_ratio.push_back(a.restore_s / b.restore_s);
    rocks_push.push_back(a.push_s);
    rados_push.push_back(b.push_s);
    rocks_restore.push_back(a.restore_s);
    rados_restore.push_back(b.restore_s);
    rocks_cpu.push_back((a.push_cpu + a.restore_cpu) / gib);
    rados_cpu.push_back((b.push_cpu + b.restore_cpu) / gib);
    std::printf(
        "pair %d: push RocksDB %.2f s, RADOS %.2f s; restore RocksDB %.2f s, RADOS "
        "%.2f s; server CPU push %.2f / %.2f s/GiB, restore %.2f / %.2f s/GiB\n",
        pair, a.push_s, b.push_s, a.restore_s, b.restore_s, a.push_cpu / gib,
        b.push_cpu / gib, a.restore_cpu / gib, b.restore_cpu / gib);
    std::fflush(stdout);
  }
  rocks.reset();
  rados.reset();
  RemoveTree(tmp);
  PrintResult(
      "rados-grpc-push-1g", bench::Median(push_ratio), 0.7, true,
      absl::StrFormat("%zu MiB through one server, median of %d pairs: RADOS "
                      "%.2f s, RocksDB %.2f s; server CPU (push+restore) RADOS "
                      "%.2f, RocksDB %.2f s/GiB",
                      mb, pairs, bench::Median(rados_push), bench::Median(rocks_push),
                      bench::Median(rados_cpu), bench::Median(rocks_cpu)));
  PrintResult(
      "rados-grpc-restore-1g", bench::Median(restore_ratio), 0.7, true,
      absl::StrFormat("%zu MiB: RADOS %.2f s, RocksDB %.2f s", mb,
                      bench::Median(rados_restore), bench::Median(rocks_restore)));
}

// Stages `n` chunks of 1 KiB as one file and commits it; prints the figures.
void BigStep(const std::string& conf, const std::string& ns, size_t n) {
  auto store = OpenRados(conf, ns + "-bigstep");
  std::vector<std::string> chunks;
  for (size_t i = 0; i < n; ++i) chunks.push_back(RandomBytes(1024, 7000000 + i));
  auto area = store->NewStagingArea();
  double t0 = Now();
  for (const std::string& c : chunks) {
    storage::ChunkRef ref;
    ref.set_sha256(Sha256Raw(c));
    ref.set_size(static_cast<uint32_t>(c.size()));
    CheckOk(area->PutChunk(ref, c), "PutChunk");
  }
  const double staged = Now() - t0;
  t0 = Now();
  CheckOk(store->Commit(Request("bigstep", 1, chunks), area.get()).status(), "Commit");
  const double commit = Now() - t0;
  PrintAbsoluteResult(
      "rados-big-step", "commit_s", commit, n * 1e-3,
      absl::StrFormat("%zu chunks: commit %.2f s (%.3f ms a chunk; 100k chunks ~%.0f s), "
                      "staging %.2f s",
                      n, commit, commit * 1e3 / n, commit * 1e5 / n, staged));
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: rados_bench CEPH_CONF [SCRATCH_DIR]\n");
    return 2;
  }
  const std::string conf = argv[1];
  const std::string scratch = MakeTempDir(argc > 2 ? argv[2] : "/tmp");
  const char* mb_env = std::getenv("MGREG_BENCH_MB");
  const size_t mb = mb_env != nullptr ? std::strtoul(mb_env, nullptr, 10) : 1024;
  const std::string ns = absl::StrCat("bench-", std::random_device{}());
  const char* big_env = std::getenv("MGREG_BENCH_BIG_CHUNKS");
  const size_t big = big_env != nullptr ? std::strtoul(big_env, nullptr, 10) : 20000;
  const char* only = std::getenv("MGREG_BENCH_ONLY");
  const char* pairs_env = std::getenv("MGREG_BENCH_PAIRS");
  const int pairs = pairs_env != nullptr ? std::atoi(pairs_env) : 3;
  if (only != nullptr && std::string(only) == "grpc") {
    GrpcPushRestore(conf, ns, mb, pairs);
    RemoveTree(scratch);
    return 0;
  }
  if (only != nullptr && std::string(only) == "big") {
    BigStep(conf, ns, big);
    RemoveTree(scratch);
    return 0;
  }

  // Push and restore: RocksDB, then RADOS, in the same run.
  std::pair<double, double> rocks, rados;
  {
    RocksDbStoreOptions o;
    o.path = scratch + "/rocks";
    auto s = OpenRocksDbStore(o);
    CheckOk(s.status(), "OpenRocksDbStore");
    rocks = PushRestore(**s, mb);
  }
  {
    auto s = OpenRados(conf, ns + "-big");
    rados = PushRestore(*s, mb);
  }
  PrintResult("rados-push-1g", rocks.first / rados.first, 0.7, true,
              absl::StrFormat("%zu MiB: RADOS %.2f s, RocksDB %.2f s", mb, rados.first,
                              rocks.first));
  PrintResult("rados-restore-1g", rocks.second / rados.second, 0.7, true,
              absl::StrFormat("%zu MiB: RADOS %.2f s, RocksDB %.2f s", mb, rados.second,
                              rocks.second));

  std::vector<std::unique_ptr<Store>> stores;
  for (int i = 0; i < 4; ++i) stores.push_back(OpenRados(conf, ns));
  std::vector<double> one = SmallCommits(*stores[0], "small-0", 200, 1);
  PrintAbsoluteResult("rados-commit-latency-1", "p50_ms", Percentile(one, 0.5), 10,
                      absl::StrFormat("p99 %.2f ms, 200 commits", Percentile(one, 0.99)));
  std::vector<double> four;
  absl::Mutex mu;
  std::vector<std::thread> writers;
  for (int i = 0; i < 4; ++i) {
    writers.emplace_back([&, i] {
      std::vector<double> ms =
          SmallCommits(*stores[i], absl::StrCat("w-", i), 50, 10 + i);
      absl::MutexLock l(&mu);
      four.insert(four.end(), ms.begin(), ms.end());
    });
  }
  for (std::thread& t : writers) t.join();
  PrintAbsoluteResult("rados-commit-latency-4", "p50_ms", Percentile(four, 0.5), 20,
                      absl::StrFormat("p99 %.2f ms, 4 writers on 4 stores x 50 commits",
                                      Percentile(four, 0.99)));

  const double qps1 = LatestQps({stores[0].get()}, 3);
  const double qps2 = LatestQps({stores[0].get(), stores[1].get()}, 3);
  PrintResult("rados-latest-qps", qps2 / qps1, 1.5, true,
              absl::StrFormat("two stores %.0f/s, one %.0f/s", qps2, qps1));

  // Commit on A, heard on B: per revision, B's listener time minus the time A's Commit
  // returned (0 when B heard it before: B acks A's notify after delivering).
  absl::Mutex lag_mu;
  std::map<int64_t, double> heard_at, returned_at;
  stores[1]->SetEventListener([&](const storage::Event& e) {
    const double now = Now();
    absl::MutexLock l(&lag_mu);
    heard_at[e.revision()] = now;
  });
  for (int i = 0; i < 200; ++i) {
    const std::vector<std::string> chunks = {RandomBytes(4096, 900000 + i)};
    auto area = stores[0]->NewStagingArea();
    storage::ChunkRef ref;
    ref.set_sha256(Sha256Raw(chunks[0]));
    ref.set_size(4096);
    CheckOk(area->PutChunk(ref, chunks[0]), "PutChunk");
    auto r = stores[0]->Commit(Request("lag", i + 1, chunks), area.get());
    const double now = Now();
    CheckOk(r.status(), "Commit");
    {
      absl::MutexLock l(&lag_mu);
      returned_at[r->record.revision()] = now;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  stores[1]->SetEventListener(nullptr);
  {
    absl::MutexLock l(&lag_mu);
    std::vector<double> lag;
    int before = 0;
    for (const auto& [rev, t] : returned_at) {
      auto h = heard_at.find(rev);
      if (h == heard_at.end()) continue;
      if (h->second <= t) ++before;
      lag.push_back(std::max(0.0, h->second - t) * 1e3);
    }
    PrintAbsoluteResult(
        "rados-event-lag", "p99_ms", Percentile(lag, 0.99), 50,
        absl::StrFormat("p50 %.2f ms, %zu of 200 events heard, %d before the commit "
                        "returned",
                        Percentile(lag, 0.5), lag.size(), before));
  }
  stores.clear();
  BigStep(conf, ns, big);
  GrpcPushRestore(conf, ns, mb, pairs);
  RemoveTree(scratch);
  return 0;
}

}  // namespace
}  // namespace mgreg

int main(int argc, char** argv) { return mgreg::Main(argc, argv); }
