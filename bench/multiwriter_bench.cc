// Distributed trainers (../shared/PERF.md method), two scenarios against mgreg-server
// (RocksDB, pinned to CPU 0; every client thread on CPU 1):
//
// multiwriter: 4 writers, each a thread with its own Client (and its own TCP connection:
// the clients differ in one channel argument, so gRPC does not share a subchannel),
// push one 1 GiB step together: the chief calls BeginUpload without files (the upload
// learns its manifest from the writers), each writer sends its 256 MiB data shard with
// PutFile (which digests the shard, then streams it), the chief also sends the .index,
// then commits. Against the floor "the same bytes over loopback TCP into a file + fsync"
// (RunSink/SendToSink in bench_util, as push_bench). Pairs floor, upload, ...; the
// ratio is the median of per-pair throughput ratios (multi-writer / floor).
//
// dedup: Client::Push of step N (10 float32 tensors of ~100 MiB in 2 shards, all new
// bytes), then of step N+1 in which one tensor changed (90 % of the bytes unchanged).
// Two RESULT lines: bytes sent (PushStats) / total bytes of step N+1, and time(push
// N+1) / time(push N), medians over the pairs (issue 17's targets: 0.12 and 0.20). The
// server's own count of PutFile bytes received (its /metrics) is printed next to the
// client's. A third, dedup-time-vs-hashing-floor: per pair, N+1's floor (the client's
// SHA-256 of every file of N+1 plus the server's of the bytes sent, in CPU-s, spread
// over the 2 cores) / push N+1's time, target >= 0.80 (bench/RESULTS.md says why).
// The client hashes each file on every core it has, so in this scenario the client's
// threads may run on both CPUs (--dedup-cpus all, the default), both pushes alike; the
// server stays on CPU 0. --dedup-cpus 1 pins them to CPU 1 as the other scenarios do.
//
//   multiwriter_bench [--pairs N] [--shard-mib M] [--writers W] [--tensor-mib T]
//                     [--only multiwriter|dedup] [--dedup-cpus all|1]
// Also: multiwriter_bench --sink DIR (the floor's receiver; started by the benchmark).
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "client/client.h"
#include "client/local_file.h"

namespace mgreg::bench {
namespace {

struct MultiWriterTiming {
  double seconds = 0;
  double digest_s = 0;  // until the last writer finished digesting its shard
  double upload_s = 0;  // until the last PutFile returned
  double commit_s = 0;  // CommitUpload
};

// One step pushed by `clients.size()` writers at once: writer i sends data shard i
// (shards beyond the writers go round-robin), writer 0 also sends the index.
MultiWriterTiming MultiWriterPush(const std::vector<std::unique_ptr<Client>>& clients,
                                  const std::string& model, int64_t step,
                                  const std::string& prefix, int64_t expect_bytes) {
  auto local = FindLocalCheckpoint(prefix);
  CheckOk(local.status(), "local checkpoint");
  std::vector<std::vector<std::pair<std::string, std::string>>> work(clients.size());
  int next = 0;
  for (const auto& [name, path] : local->files) {
    if (name == "index") {
      work[0].emplace_back(name, path);
    } else {
      work[static_cast<size_t>(next++) % clients.size()].emplace_back(name, path);
    }
  }
  MultiWriterTiming t;
  const double start = Now();
  v1::BeginUploadRequest begin;
  begin.set_model(model);
  begin.set_step(step);
  begin.set_basename(local->basename);
  auto upload = clients[0]->BeginUpload(begin);
  CheckOk(upload.status(), "BeginUpload");
  const std::string id = upload->upload_id();
  std::vector<double> first_progress(clients.size(), 0);
  std::vector<absl::Status> status(clients.size());
  std::vector<std::thread> threads;
  for (size_t w = 0; w < clients.size(); ++w) {
    threads.emplace_back([&, w]() {
      for (const auto& [name, path] : work[w]) {
        auto put = clients[w]->PutFile(id, name, path, [&, w](int64_t, int64_t) {
          if (first_progress[w] == 0) first_progress[w] = Now();
        });
        if (!put.ok()) {
          status[w] = put.status();
          return;
        }
        if (!put->complete()) status[w] = absl::DataLossError(name + " is not complete");
      }
    });
  }
  for (std::thread& th : threads) th.join();
  const double uploaded = Now();
  for (const absl::Status& s : status) CheckOk(s, "PutFile");
  auto committed = clients[0]->CommitUpload(id);
  const double end = Now();
  CheckOk(committed.status(), "CommitUpload");
  if (committed->total_bytes() != expect_bytes || committed->step() != step) {
    Die(absl::StrCat("the server committed ", committed->total_bytes(), " bytes at step ",
                     committed->step(), ", expected ", expect_bytes, " at step ", step));
  }
  t.seconds = end - start;
  double digested = start;
  for (double f : first_progress) digested = std::max(digested, f);
  t.digest_s = digested - start;
  t.upload_s = uploaded - digested;
  t.commit_s = end - uploaded;
  return t;
}

void RunMultiWriter(const std::string& tmp, ChildProcess* server, ChildProcess* sink,
                    int pairs, int writers, int64_t shard_bytes) {
  const std::string ckpt_dir = absl::StrCat(tmp, "/mw-ckpt");
  std::filesystem::create_directories(ckpt_dir);
  std::vector<std::unique_ptr<Client>> clients;
  for (int w = 0; w < writers; ++w)
    clients.push_back(ConnectClient(server->address(), w));
  const std::string model = "bench/multiwriter";
  const std::string metrics = MetricsAddress(*server);

  // Warm-up: a small step, so that connections and the store's first files are not in
  // the first sample.
  {
    const std::string prefix =
        WriteBenchCheckpoint(ckpt_dir, "model.ckpt", 0, 5000, writers, 8 << 20, 4 << 20);
    MultiWriterPush(clients, model, 0, prefix, CheckpointBytes(prefix));
    SendToSink(sink->address(), CheckpointFiles(prefix), CheckpointBytes(prefix));
    for (const std::string& f : CheckpointFiles(prefix)) std::filesystem::remove(f);
  }

  std::vector<double> ratios, floor_mbs, mw_mbs, digest_s, upload_s, commit_s,
      cpu_per_gib;
  int64_t bytes = 0;
  double server_received = 0;
  for (int pair = 1; pair <= pairs; ++pair) {
    const std::string prefix = WriteBenchCheckpoint(ckpt_dir, "model.ckpt", pair,
                                                    5000 + static_cast<uint64_t>(pair),
                                                    writers, shard_bytes, 8 << 20);
    bytes = CheckpointBytes(prefix);
    const double floor_s = SendToSink(sink->address(), CheckpointFiles(prefix), bytes);

    const double received0 = MetricValue(HttpGet(metrics, "/metrics"),
                                         "mgreg_grpc_received_bytes_total", "PutFile");
    const double cpu0 = CpuSeconds(server->pid());
    const MultiWriterTiming t = MultiWriterPush(clients, model, pair, prefix, bytes);
    const double cpu = CpuSeconds(server->pid()) - cpu0;
    server_received = MetricValue(HttpGet(metrics, "/metrics"),
                                  "mgreg_grpc_received_bytes_total", "PutFile") -
                      received0;
    if (server_received < static_cast<double>(bytes)) {
      Die(absl::StrCat("the server counted ", server_received,
                       " PutFile bytes, the step has ", bytes));
    }
    ratios.push_back(floor_s / t.seconds);
    floor_mbs.push_back(bytes / floor_s / kMB);
    mw_mbs.push_back(bytes / t.seconds / kMB);
    digest_s.push_back(t.digest_s);
    upload_s.push_back(t.upload_s);
    commit_s.push_back(t.commit_s);
    cpu_per_gib.push_back(cpu / (bytes / (kMiB * 1024)));
    std::printf(
        "multiwriter pair %d: floor %.0f MB/s (%.2f s), %d writers %.0f MB/s (%.2f s: "
        "digest %.2f s, upload %.2f s, commit %.2f s), server CPU %.2f s/GiB, server "
        "received %.0f MiB\n",
        pair, floor_mbs.back(), floor_s, writers, mw_mbs.back(), t.seconds, t.digest_s,
        t.upload_s, t.commit_s, cpu_per_gib.back(), server_received / kMiB);
    std::fflush(stdout);
    for (const std::string& f : CheckpointFiles(prefix)) std::filesystem::remove(f);
  }
  RemoveTree(ckpt_dir);
  PrintResult(
      "multiwriter", Median(ratios), 0.70, true,
      absl::StrFormat(
          "%d writers %.0f MB/s, floor tcp->file+fsync %.0f MB/s; phases "
          "(median s): writers' digests %.2f, upload %.2f, commit %.2f; server "
          "CPU %.2f s/GiB; %d pairs of %.0f MiB (%d shards + index)",
          writers, Median(mw_mbs), Median(floor_mbs), Median(digest_s), Median(upload_s),
          Median(commit_s), Median(cpu_per_gib), pairs, bytes / kMiB, writers));
}

void RunDedup(const std::string& tmp, ChildProcess* server, int pairs,
              int64_t tensor_bytes, bool all_cpus) {
  if (all_cpus) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) Die("cannot unpin the client");
  }
  constexpr int kTensors = 10;
  constexpr int kShards = 2;
  constexpr int kChanged = 4;  // in shard 0; shard 1 is unchanged as a whole file
  const std::string ckpt_dir = absl::StrCat(tmp, "/dedup-ckpt");
  std::filesystem::create_directories(ckpt_dir);
  std::unique_ptr<Client> client = ConnectClient(server->address(), 100);
  const std::string model = "bench/dedup";
  // A push hashes a file on every core (client/push.cc).
  const int hash_threads =
      static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::string metrics = MetricsAddress(*server);

  // Warm-up: one small step (the model then has a step, as it would after step 0).
  {
    std::vector<uint64_t> seeds(kTensors);
    for (int t = 0; t < kTensors; ++t) seeds[t] = 900000 + t;
    const std::string prefix =
        WriteBenchCheckpointTensors(ckpt_dir, "model.ckpt", 0, seeds, kShards, 1 << 20);
    CheckOk(client->Push(model, prefix, PushOptions()).status(), "warm-up push");
    for (const std::string& f : CheckpointFiles(prefix)) std::filesystem::remove(f);
  }

  std::vector<double> sent_ratios, time_ratios, first_s, next_s, next_hash_s,
      next_upload_s, next_commit_s, server_ratios, server_cpu_s, client_cpu_s, floor_s,
      floor_ratios, floor_over_n, hash_wall_s, hash_cpu_s;
  int64_t total = 0, sent = 0, dedup_files = 0, dedup_chunks = 0;
  double file_sha_s = 0, chunk_sha_s = 0;
  for (int pair = 1; pair <= pairs; ++pair) {
    std::vector<uint64_t> seeds(kTensors);
    for (int t = 0; t < kTensors; ++t) seeds[t] = static_cast<uint64_t>(pair) * 1000 + t;
    const int64_t step_n = 10 * pair;
    const std::string prefix_n = WriteBenchCheckpointTensors(
        ckpt_dir, "model.ckpt", step_n, seeds, kShards, tensor_bytes);
    seeds[kChanged] += 500;
    const std::string prefix_n1 = WriteBenchCheckpointTensors(
        ckpt_dir, "model.ckpt", step_n + 1, seeds, kShards, tensor_bytes);

    double t0 = Now();
    auto pushed = client->Push(model, prefix_n, PushOptions());
    const double push_n_s = Now() - t0;
    CheckOk(pushed.status(), "push step N");

    PushStats stats;
    PushOptions options;
    options.stats = &stats;
    double first_progress = 0, last_progress = 0;
    options.progress = [&](int64_t done, int64_t all) {
      const double now = Now();
      if (first_progress == 0) first_progress = now;
      if (done == all) last_progress = now;
    };
    const double received0 = MetricValue(HttpGet(metrics, "/metrics"),
                                         "mgreg_grpc_received_bytes_total", "PutFile");
    const double server_cpu0 = CpuSeconds(server->pid());
    const double client_cpu0 = CpuSeconds(getpid());
    t0 = Now();
    pushed = client->Push(model, prefix_n1, options);
    const double end = Now();
    server_cpu_s.push_back(CpuSeconds(server->pid()) - server_cpu0);
    client_cpu_s.push_back(CpuSeconds(getpid()) - client_cpu0);
    const double push_n1_s = end - t0;
    CheckOk(pushed.status(), "push step N+1");
    const double received = MetricValue(HttpGet(metrics, "/metrics"),
                                        "mgreg_grpc_received_bytes_total", "PutFile") -
                            received0;
    total = CheckpointBytes(prefix_n1);
    if (pushed->total_bytes() != total || pushed->step() != step_n + 1) {
      Die(absl::StrCat("the server committed ", pushed->total_bytes(), " bytes at step ",
                       pushed->step(), ", expected ", total));
    }
    sent = stats.bytes_sent;
    dedup_files = stats.bytes_deduplicated_files;
    dedup_chunks = stats.bytes_deduplicated_chunks;
    if (sent + dedup_files + dedup_chunks != total) {
      Die(absl::StrCat("PushStats add up to ", sent + dedup_files + dedup_chunks,
                       " bytes, the step has ", total));
    }
    // The same run's floor of N+1 (interleaved, pair by pair): the CPU work no push of
    // it can avoid. The client reads and hashes every byte (DigestFile: the client's
    // own hashing, two pieces at a time per thread, with the threads a push uses, so
    // the floor drops whenever the client's hashing gets cheaper; the files are in the
    // page cache as they were for the push), and the server verifies the changed bytes
    // it receives (one SHA-256 pass over them: the hashing's CPU-s per byte times the
    // bytes sent). Spread over the machine's 2 cores when the client may use both, else
    // the client's hashing on CPU 1 beside the server's on CPU 0. From CPU-s, not the
    // hashing's wall time, so that other work on the machine does not raise the floor
    // (it still slows the push).
    const double hash_cpu0 = CpuSeconds(getpid());
    const double hash_t0 = Now();
    for (const std::string& f : CheckpointFiles(prefix_n1)) {
      CheckOk(DigestFile(f, hash_threads).status(), "digest");
    }
    hash_wall_s.push_back(Now() - hash_t0);
    hash_cpu_s.push_back(CpuSeconds(getpid()) - hash_cpu0);
    const double verify_cpu = hash_cpu_s.back() * static_cast<double>(stats.bytes_sent) /
                              static_cast<double>(total);
    floor_s.push_back(all_cpus ? (hash_cpu_s.back() + verify_cpu) / 2
                               : std::max(hash_cpu_s.back(), verify_cpu));
    floor_ratios.push_back(floor_s.back() / push_n1_s);
    floor_over_n.push_back(floor_s.back() / push_n_s);
    sent_ratios.push_back(static_cast<double>(sent) / static_cast<double>(total));
    server_ratios.push_back(received / static_cast<double>(total));
    time_ratios.push_back(push_n1_s / push_n_s);
    first_s.push_back(push_n_s);
    next_s.push_back(push_n1_s);
    next_hash_s.push_back(first_progress - t0);
    next_upload_s.push_back(last_progress - first_progress);
    next_commit_s.push_back(end - last_progress);
    std::printf(
        "dedup pair %d: push N %.2f s, push N+1 %.2f s (hash+begin %.2f, upload %.2f, "
        "commit %.2f); N+1 sent %.1f MiB of %.1f MiB (files deduplicated %.1f MiB, "
        "chunks %.1f MiB), server received %.1f MiB of PutFile messages; N+1 CPU-s: "
        "server %.2f, client %.2f; floor of N+1 %.2f s (client SHA-256 of every file "
        "%.2f s, %.2f CPU-s)\n",
        pair, push_n_s, push_n1_s, next_hash_s.back(), next_upload_s.back(),
        next_commit_s.back(), sent / kMiB, total / kMiB, dedup_files / kMiB,
        dedup_chunks / kMiB, received / kMiB, server_cpu_s.back(), client_cpu_s.back(),
        floor_s.back(), hash_wall_s.back(), hash_cpu_s.back());
    std::fflush(stdout);
    if (pair == pairs) {
      // The client's hashing alone, on its CPU (hot cache): the whole-file SHA-256 of
      // every file, and the per-chunk SHA-256 of the changed shard.
      double t = Now();
      for (const std::string& f : CheckpointFiles(prefix_n1)) {
        CheckOk(DigestFile(f).status(), "digest");
      }
      file_sha_s = Now() - t;
      t = Now();
      CheckOk(
          ChunkDigests(absl::StrCat(prefix_n1, ".data-00000-of-00002"), 1 << 20).status(),
          "chunk digests");
      chunk_sha_s = Now() - t;
    }
    for (const std::string& f : CheckpointFiles(prefix_n)) std::filesystem::remove(f);
    for (const std::string& f : CheckpointFiles(prefix_n1)) std::filesystem::remove(f);
  }
  RemoveTree(ckpt_dir);
  if (all_cpus) PinToCpu(1);
  PrintResult("dedup-bytes", Median(sent_ratios), 0.12, false,
              absl::StrFormat(
                  "step N+1 sent %.1f MiB of %.1f MiB (PushStats; server counted "
                  "%.3f of the bytes in PutFile messages); deduplicated: whole "
                  "files %.1f MiB, chunks %.1f MiB; %d tensors of %.1f MiB, 1 "
                  "changed; %d pairs",
                  sent / kMiB, total / kMiB, Median(server_ratios), dedup_files / kMiB,
                  dedup_chunks / kMiB, kTensors, tensor_bytes / kMiB, pairs));
  PrintResult(
      "dedup-time", Median(time_ratios), 0.20, false,
      absl::StrFormat("push N+1 %.2f s (client hash+begin %.2f, upload %.2f, commit "
                      "%.2f), first push of N %.2f s; medians of %d pairs; client "
                      "alone (one thread): SHA-256 of every file of N+1 %.2f s, "
                      "per-chunk SHA-256 of the changed shard %.2f s; client on %s",
                      Median(next_s), Median(next_hash_s), Median(next_upload_s),
                      Median(next_commit_s), Median(first_s), pairs, file_sha_s,
                      chunk_sha_s, all_cpus ? "both CPUs" : "CPU 1"));
  // Issue 17's dedup-time row keeps its target; this one says how far N+1 is from what
  // the machine allows (see bench/RESULTS.md, "dedup-time: where N+1's time goes").
  PrintResult(
      "dedup-time-vs-hashing-floor", Median(floor_ratios), 0.80, true,
      absl::StrFormat(
          "push N+1 %.2f s, floor %.2f s: client SHA-256 of every file of N+1 with %d "
          "threads %.2f s (%.2f CPU-s) plus the server's SHA-256 of the %.1f MiB sent, "
          "spread over %s; floor / push N %.3f: the best dedup-time this machine "
          "allows; N+1 CPU-s: server %.2f, client %.2f; medians of %d pairs",
          Median(next_s), Median(floor_s), hash_threads, Median(hash_wall_s),
          Median(hash_cpu_s), sent / kMiB, all_cpus ? "both CPUs" : "CPU 1 and CPU 0",
          Median(floor_over_n), Median(server_cpu_s), Median(client_cpu_s), pairs));
}

int Main(int argc, char** argv) {
  int pairs = 5;
  int writers = 4;
  int64_t shard_mib = 256;
  int64_t tensor_bytes = (100 << 20) - 4096 * 3;  // ~100 MiB, not chunk-aligned
  std::string only;
  bool dedup_all_cpus = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--pairs") pairs = std::atoi(argv[i + 1]);
    if (flag == "--writers") writers = std::atoi(argv[i + 1]);
    if (flag == "--shard-mib") shard_mib = std::atoll(argv[i + 1]);
    if (flag == "--tensor-mib") tensor_bytes = std::atoll(argv[i + 1]) << 20;
    if (flag == "--only") only = argv[i + 1];
    if (flag == "--dedup-cpus") dedup_all_cpus = std::string(argv[i + 1]) != "1";
  }
  PinToCpu(1);
  const std::string tmp = MakeTempDir("multiwriter");
  // Both scenarios' checkpoints (2 at a time) and every step pushed.
  RequireFreeSpace(
      tmp,
      (pairs + 2) * (writers * (shard_mib << 20) + 2 * 10 * tensor_bytes) + (2ll << 30));
  auto server =
      StartServer(absl::StrCat(tmp, "/data"), {"--metrics-listen", "127.0.0.1:0"});
  if (only.empty() || only == "multiwriter") {
    const std::string sink_dir = absl::StrCat(tmp, "/sink");
    std::filesystem::create_directories(sink_dir);
    auto sink = ChildProcess::Start({SelfPath(), "--sink", sink_dir}, 0, "listening on");
    RunMultiWriter(tmp, server.get(), sink.get(), pairs, writers, shard_mib << 20);
  }
  if (only.empty() || only == "dedup") {
    RunDedup(tmp, server.get(), pairs, tensor_bytes, dedup_all_cpus);
  }
  server.reset();
  RemoveTree(tmp);
  return 0;
}

}  // namespace
}  // namespace mgreg::bench

int main(int argc, char** argv) {
  return mgreg::bench::SinkOrBenchmark(argc, argv, &mgreg::bench::Main);
}
