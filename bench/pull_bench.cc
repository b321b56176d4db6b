// pull: Client::Restore of a 1 GiB checkpoint (index + 2 shards of 512 MiB) into a fresh
// directory, hot cache (mgreg-server pinned to CPU 0, the client to CPU 1), against the
// floor "a bare callback-API server streaming the same number of bytes in 1 MiB
// FileChunk messages from memory, received by a bare client that discards them".
// Pairs interleaved floor, restore, ...; the ratio is the median of per-pair throughput
// ratios (restore / floor).
//
// restore-disk (issue 17): the same restore against the floor "write + fsync of the same
// bytes" (files of the checkpoint's sizes written from memory in 8 MiB writes into the
// same file system by the client's process, each fsynced, then the directory), also
// interleaved; restore-client-cpu: the client process's CPU (user + system, from
// getrusage) per GiB restored.
//
// Restore also SHA-256-verifies and fsyncs every file; so that the report can say where
// the time goes, each pair also streams the files from the real server into a client
// that discards them (server side alone), and the end of the run measures SHA-256 on the
// client's CPU.
//
//   pull_bench [--pairs N] [--shard-mib M] [--profile N]
// --profile N: after the push, prints "profile: pid P", waits 5 s (attach perf record -p
// P or strace -c -f -p P then) and runs N restores without floors, printing each one's
// time and client CPU.
// Also: pull_bench --bare-server ... (the floor's server; started by the benchmark).
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
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

// CPU seconds of this whole process so far (every thread), user and system apart.
struct ProcessCpu {
  double user = 0;
  double sys = 0;
};
ProcessCpu ProcessCpuNow() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return {seconds(usage.ru_utime), seconds(usage.ru_stime)};
}

// The disk floor: writes files of `sizes` under `dir` from memory in 8 MiB writes, fsyncs
// each, then the directory; returns the seconds taken. The files are removed after.
// `direct`: with O_DIRECT (what restores use, client/hashing_file_writer.h; `block` must
// be 4 KiB-aligned), else through the page cache (the floor).
double WriteAndFsync(const std::string& dir, const std::vector<int64_t>& sizes,
                     const char* block, size_t block_size, bool direct) {
  std::filesystem::create_directories(dir);
  const double start = Now();
  for (size_t i = 0; i < sizes.size(); ++i) {
    const std::string path = absl::StrCat(dir, "/file-", i);
    const int fd =
        open(path.c_str(),
             O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (direct ? O_DIRECT : 0), 0644);
    if (fd < 0) Die(absl::StrCat("cannot create ", path));
    for (int64_t left = sizes[i]; left > 0;) {
      const size_t n = static_cast<size_t>(std::min<int64_t>(left, block_size));
      if (direct && n % 4096 != 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_DIRECT);
      if (write(fd, block, n) != static_cast<ssize_t>(n)) Die("write failed");
      left -= static_cast<int64_t>(n);
    }
    if (fsync(fd) != 0) Die("fsync failed");
    close(fd);
  }
  const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  fsync(dfd);
  close(dfd);
  const double seconds = Now() - start;
  RemoveTree(dir);
  return seconds;
}

void CheckRestored(const std::string& dir, const v1::Checkpoint& restored) {
  for (const v1::FileInfo& f : restored.files()) {
    const std::string path = absl::StrCat(dir, "/model.ckpt-1.", f.name());
    if (static_cast<int64_t>(std::filesystem::file_size(path)) != f.size()) {
      Die(absl::StrCat("restored ", path, " has the wrong size"));
    }
  }
}

int Main(int argc, char** argv) {
  int pairs = 5;
  int64_t shard_mib = 512;
  int profile = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--pairs") pairs = std::atoi(argv[i + 1]);
    if (flag == "--shard-mib") shard_mib = std::atoll(argv[i + 1]);
    if (flag == "--profile") profile = std::atoi(argv[i + 1]);
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
  const double gib = bytes / (kMiB * 1024);
  const std::string restore_base = absl::StrCat(tmp, "/restore");
  if (profile > 0) {
    std::printf("profile: pid %d\n", static_cast<int>(getpid()));
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::seconds(5));
    for (int i = 1; i <= profile; ++i) {
      const std::string dir = absl::StrCat(restore_base, "-", i);
      const ProcessCpu cpu0 = ProcessCpuNow();
      const double start = Now();
      absl::StatusOr<v1::Checkpoint> restored =
          client.Restore(model, dir, RestoreOptions());
      const double seconds = Now() - start;
      const ProcessCpu cpu1 = ProcessCpuNow();
      CheckOk(restored.status(), "restore");
      CheckRestored(dir, *restored);
      RemoveTree(dir);
      std::printf("restore %d: %.0f MB/s, client CPU %.2f s/GiB (user %.2f, sys %.2f)\n",
                  i, bytes / seconds / kMB,
                  (cpu1.user - cpu0.user + cpu1.sys - cpu0.sys) / gib,
                  (cpu1.user - cpu0.user) / gib, (cpu1.sys - cpu0.sys) / gib);
      std::fflush(stdout);
    }
    server.reset();
    RemoveTree(tmp);
    return 0;
  }
  std::vector<int64_t> sizes;
  for (const v1::FileInfo& f : pushed->files()) sizes.push_back(f.size());
  std::string block(8u << 20, '\0');
  for (size_t i = 0; i < block.size(); ++i)
    block[i] = static_cast<char>(i * 7 + (i >> 13));

  std::vector<std::string> bare_args = {SelfPath(), "--bare-server"};
  for (const v1::FileInfo& f : pushed->files()) {
    bare_args.push_back("--file");
    bare_args.push_back(absl::StrCat(f.name(), "=", f.size()));
  }
  auto bare = ChildProcess::Start(bare_args, 0, "listening on");
  auto bare_stub = BareStub(bare->address());
  auto real_stub = BareStub(server->address());

  // Warm-up: hot cache on the server, connections up.
  CheckOk(client.Restore(model, restore_base + "-warm", RestoreOptions()).status(),
          "warm-up restore");
  RemoveTree(restore_base + "-warm");
  StreamAndDiscard(bare_stub.get(), *pushed);

  std::vector<double> ratios, floor_mbs, restore_mbs, server_only_mbs, cpu_per_gib,
      bare_cpu_per_gib, disk_ratios, disk_mbs, direct_mbs, client_cpu, client_user,
      client_sys;
  char* aligned = static_cast<char*>(std::aligned_alloc(4096, block.size()));
  std::memcpy(aligned, block.data(), block.size());
  for (int pair = 1; pair <= pairs; ++pair) {
    const double disk_s = WriteAndFsync(absl::StrCat(tmp, "/floor"), sizes, block.data(),
                                        block.size(), false);
    const double direct_s =
        WriteAndFsync(absl::StrCat(tmp, "/floor"), sizes, aligned, block.size(), true);

    const double bare_cpu0 = CpuSeconds(bare->pid());
    const double floor_s = StreamAndDiscard(bare_stub.get(), *pushed);
    bare_cpu_per_gib.push_back((CpuSeconds(bare->pid()) - bare_cpu0) / gib);

    const std::string dir = absl::StrCat(restore_base, "-", pair);
    const double cpu0 = CpuSeconds(server->pid());
    const ProcessCpu client0 = ProcessCpuNow();
    const double start = Now();
    absl::StatusOr<v1::Checkpoint> restored =
        client.Restore(model, dir, RestoreOptions());
    const double restore_s = Now() - start;
    const ProcessCpu client1 = ProcessCpuNow();
    cpu_per_gib.push_back((CpuSeconds(server->pid()) - cpu0) / gib);
    client_user.push_back((client1.user - client0.user) / gib);
    client_sys.push_back((client1.sys - client0.sys) / gib);
    client_cpu.push_back(client_user.back() + client_sys.back());
    CheckOk(restored.status(), "restore");
    CheckRestored(dir, *restored);
    RemoveTree(dir);

    const double server_only_s = StreamAndDiscard(real_stub.get(), *pushed);
    ratios.push_back(floor_s / restore_s);
    disk_ratios.push_back(disk_s / restore_s);
    disk_mbs.push_back(bytes / disk_s / kMB);
    direct_mbs.push_back(bytes / direct_s / kMB);
    floor_mbs.push_back(bytes / floor_s / kMB);
    restore_mbs.push_back(bytes / restore_s / kMB);
    server_only_mbs.push_back(bytes / server_only_s / kMB);
    std::printf(
        "pair %d: floor stream %.0f MB/s, write+fsync %.0f MB/s (O_DIRECT %.0f MB/s), "
        "restore %.0f MB/s, real server stream discarded %.0f MB/s, server CPU %.2f "
        "s/GiB (bare %.2f), client CPU %.2f s/GiB (user %.2f, sys %.2f)\n",
        pair, floor_mbs.back(), disk_mbs.back(), direct_mbs.back(), restore_mbs.back(),
        server_only_mbs.back(), cpu_per_gib.back(), bare_cpu_per_gib.back(),
        client_cpu.back(), client_user.back(), client_sys.back());
    std::fflush(stdout);
  }
  std::free(aligned);
  const int64_t peak_kib = PeakRssKib(server->pid());
  bare.reset();
  server.reset();

  // The client's own cost, on its CPU: SHA-256 of the same bytes.
  const int blocks = static_cast<int>(bytes / static_cast<int64_t>(block.size()));
  double t = Now();
  Sha256 hasher;
  for (int i = 0; i < blocks; ++i) hasher.Update(block);
  (void)hasher.HexDigest();
  const double sha_mbs = blocks * block.size() / (Now() - t) / kMB;
  RemoveTree(tmp);
  std::printf("client CPU alone: SHA-256 %.0f MB/s\n", sha_mbs);

  PrintResult(
      "pull", Median(ratios), 0.80, true,
      absl::StrFormat("restore %.0f MB/s, floor bare gRPC stream %.0f MB/s; real "
                      "server streamed to a discarding client %.0f MB/s; server CPU "
                      "%.2f s/GiB vs bare %.2f; client SHA-256 alone %.0f MB/s; "
                      "server peak RSS %d MiB; %d pairs of %.0f MiB",
                      Median(restore_mbs), Median(floor_mbs), Median(server_only_mbs),
                      Median(cpu_per_gib), Median(bare_cpu_per_gib), sha_mbs,
                      static_cast<int>(peak_kib / 1024), pairs, bytes / kMiB));
  PrintResult(
      "restore-disk", Median(disk_ratios), 0.85, true,
      absl::StrFormat("restore %.0f MB/s into an empty directory, fsynced, vs "
                      "write+fsync of the same bytes %.0f MB/s (with O_DIRECT "
                      "%.0f MB/s); %d pairs",
                      Median(restore_mbs), Median(disk_mbs), Median(direct_mbs), pairs));
  PrintAbsoluteResult(
      "restore-client-cpu", "cpu_s_per_gib", Median(client_cpu), 1.5,
      absl::StrFormat("client process user %.2f + system %.2f CPU-s per GiB restored",
                      Median(client_user), Median(client_sys)));
  return 0;
}

}  // namespace
}  // namespace mgreg::bench

int main(int argc, char** argv) {
  return mgreg::bench::BareServerOrBenchmark(argc, argv, &mgreg::bench::Main);
}
