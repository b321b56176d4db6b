// pull: Client::Restore of a 1 GiB checkpoint (index + 2 shards of 512 MiB) into a fresh
// directory, hot cache (mgreg-server pinned to CPU 0, the client to CPU 1), against the
// floor "a bare callback-API server streaming the same number of bytes in 1 MiB
// FileChunk messages from memory, received by a bare client that discards them".
// Pairs interleaved floor, restore, ...; the ratio is the median of per-pair throughput
// ratios (restore / floor).
//
// Restore also SHA-256-verifies and fsyncs every file; so that the report can say where
// the time goes, each pair also streams the files from the real server into a client
// that discards them (server side alone), and the end of the run measures SHA-256 and
// write + fsync of the same bytes on the client's CPU.
//
//   pull_bench [--pairs N] [--shard-mib M]
// Also: pull_bench --bare-server ... (the floor's server; started by the benchmark).
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/bare_server.h"
#include "bench/bench_util.h"
#include "client/client.h"
#include "common/sha256.h"
#include "mgreg/v1/registry.grpc.pb.h"

namespace mgreg::bench {
namespace {

std::unique_ptr<v1::Registry::Stub> BareStub(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  args.SetMaxSendMessageSize(16 << 20);
  return v1::Registry::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
}

// Reads every file of `checkpoint` with ReadFile and discards the bytes; returns the
// seconds taken. Fails unless each file arrives whole.
double StreamAndDiscard(v1::Registry::Stub* stub, const v1::Checkpoint& checkpoint) {
  const double start = Now();
  for (const v1::FileInfo& file : checkpoint.files()) {
    v1::ReadFileRequest request;
    request.set_model(checkpoint.model());
    request.set_step(checkpoint.step());
    request.set_name(file.name());
    grpc::ClientContext ctx;
    auto reader = stub->ReadFile(&ctx, request);
    v1::FileChunk chunk;
    int64_t received = 0;
    while (reader->Read(&chunk)) received += static_cast<int64_t>(chunk.data().size());
    grpc::Status status = reader->Finish();
    if (!status.ok() || received != file.size()) {
      Die(absl::StrCat("stream of '", file.name(), "': ", status.error_message(), ", ",
                       received, " of ", file.size(), " bytes"));
    }
  }
  return Now() - start;
}

int Main(int argc, char** argv) {
  int pairs = 5;
  int64_t shard_mib = 512;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--pairs") pairs = std::atoi(argv[i + 1]);
    if (flag == "--shard-mib") shard_mib = std::atoll(argv[i + 1]);
  }
  PinToCpu(1);
  const int64_t shard_bytes = shard_mib << 20;
  const std::string tmp = MakeTempDir("pull");
  RequireFreeSpace(tmp, 5 * 2 * shard_bytes + (2ll << 30));
  const std::string ckpt_dir = absl::StrCat(tmp, "/ckpt");
  std::filesystem::create_directories(ckpt_dir);

  auto server = StartServer(absl::StrCat(tmp, "/data"));
  std::unique_ptr<Client> client_owner = ConnectClient(server->address());
  Client& client = *client_owner;
  const std::string model = "bench/pull";
  const std::string prefix =
      WriteBenchCheckpoint(ckpt_dir, "model.ckpt", 1, 1, 2, shard_bytes, 8 << 20);
  absl::StatusOr<v1::Checkpoint> pushed = client.Push(model, prefix, PushOptions());
  CheckOk(pushed.status(), "push");
  RemoveTree(ckpt_dir);
  const int64_t bytes = pushed->total_bytes();

  std::vector<std::string> bare_args = {SelfPath(), "--bare-server"};
  for (const v1::FileInfo& f : pushed->files()) {
    bare_args.push_back("--file");
    bare_args.push_back(absl::StrCat(f.name(), "=", f.size()));
  }
  auto bare = ChildProcess::Start(bare_args, 0, "listening on");
  auto bare_stub = BareStub(bare->address());
  auto real_stub = BareStub(server->address());

  // Warm-up: hot cache on the server, connections up.
  const std::string restore_base = absl::StrCat(tmp, "/restore");
  CheckOk(client.Restore(model, restore_base + "-warm", RestoreOptions()).status(),
          "warm-up restore");
  RemoveTree(restore_base + "-warm");
  StreamAndDiscard(bare_stub.get(), *pushed);

  std::vector<double> ratios, floor_mbs, restore_mbs, server_only_mbs, cpu_per_gib,
      bare_cpu_per_gib;
  const double gib = bytes / (kMiB * 1024);
  for (int pair = 1; pair <= pairs; ++pair) {
    const double bare_cpu0 = CpuSeconds(bare->pid());
    const double floor_s = StreamAndDiscard(bare_stub.get(), *pushed);
    bare_cpu_per_gib.push_back((CpuSeconds(bare->pid()) - bare_cpu0) / gib);

    const std::string dir = absl::StrCat(restore_base, "-", pair);
    const double cpu0 = CpuSeconds(server->pid());
    const double start = Now();
    absl::StatusOr<v1::Checkpoint> restored =
        client.Restore(model, dir, RestoreOptions());
    const double restore_s = Now() - start;
    cpu_per_gib.push_back((CpuSeconds(server->pid()) - cpu0) / gib);
    CheckOk(restored.status(), "restore");
    for (const v1::FileInfo& f : restored->files()) {
      const std::string path = absl::StrCat(dir, "/model.ckpt-1.", f.name());
      if (static_cast<int64_t>(std::filesystem::file_size(path)) != f.size()) {
        Die(absl::StrCat("restored ", path, " has the wrong size"));
      }
    }
    RemoveTree(dir);

    const double server_only_s = StreamAndDiscard(real_stub.get(), *pushed);
    ratios.push_back(floor_s / restore_s);
    floor_mbs.push_back(bytes / floor_s / kMB);
    restore_mbs.push_back(bytes / restore_s / kMB);
    server_only_mbs.push_back(bytes / server_only_s / kMB);
    std::printf(
        "pair %d: floor %.0f MB/s, restore %.0f MB/s, real server stream discarded %.0f "
        "MB/s, server CPU %.2f s/GiB (bare %.2f)\n",
        pair, floor_mbs.back(), restore_mbs.back(), server_only_mbs.back(),
        cpu_per_gib.back(), bare_cpu_per_gib.back());
    std::fflush(stdout);
  }
  const int64_t peak_kib = PeakRssKib(server->pid());
  bare.reset();
  server.reset();

  // The client's own costs, on its CPU: SHA-256 and write + fsync of the same bytes.
  std::string block(8u << 20, '\0');
  for (size_t i = 0; i < block.size(); ++i)
    block[i] = static_cast<char>(i * 7 + (i >> 13));
  const int blocks = static_cast<int>(bytes / static_cast<int64_t>(block.size()));
  double t = Now();
  Sha256 hasher;
  for (int i = 0; i < blocks; ++i) hasher.Update(block);
  (void)hasher.HexDigest();
  const double sha_mbs = blocks * block.size() / (Now() - t) / kMB;
  const std::string file = absl::StrCat(tmp, "/write-fsync");
  t = Now();
  const int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  for (int i = 0; i < blocks; ++i) {
    if (write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) {
      Die("write failed");
    }
  }
  fsync(fd);
  close(fd);
  const double write_mbs = blocks * block.size() / (Now() - t) / kMB;
  RemoveTree(tmp);
  std::printf("client CPU alone: SHA-256 %.0f MB/s, write + fsync %.0f MB/s\n", sha_mbs,
              write_mbs);

  PrintResult(
      "pull", Median(ratios), 0.80, true,
      absl::StrFormat("restore %.0f MB/s, floor bare gRPC stream %.0f MB/s; real "
                      "server streamed to a discarding client %.0f MB/s; server CPU "
                      "%.2f s/GiB vs bare %.2f; client SHA-256 alone %.0f MB/s, "
                      "write+fsync alone %.0f MB/s; server peak RSS %d MiB; %d pairs "
                      "of %.0f MiB",
                      Median(restore_mbs), Median(floor_mbs), Median(server_only_mbs),
                      Median(cpu_per_gib), Median(bare_cpu_per_gib), sha_mbs, write_mbs,
                      static_cast<int>(peak_kib / 1024), pairs, bytes / kMiB));
  return 0;
}

}  // namespace
}  // namespace mgreg::bench

int main(int argc, char** argv) {
  return mgreg::bench::BareServerOrBenchmark(argc, argv, &mgreg::bench::Main);
}
