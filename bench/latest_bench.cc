// latest: GetLatestCheckpoint under h2load (pinned to CPU 1) against mgreg-server
// (RocksDB, pinned to CPU 0), vs a bare callback-API server returning the same
// Checkpoint message from memory. Pairs interleaved bare, real, ...; the ratio is the
// median of per-pair QPS ratios (real / bare), and the extra server CPU per call is the
// median of per-pair differences of CPU-µs per call (utime + stime of the server).
//
// h2load counts a failed gRPC call (HTTP 200, grpc-status != 0, no DATA) as a success,
// so every run checks that the DATA bytes received equal calls x (5 + response size):
// only successful calls carry a response message.
//
//   latest_bench [--pairs N] [--calls N]
// Also: latest_bench --bare-server ... (the floor's server; started by the benchmark).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/bare_server.h"
#include "bench/bench_util.h"
#include "client/client.h"
#include "mgreg/v1/registry.grpc.pb.h"

namespace mgreg::bench {
namespace {

struct LoadResult {
  double qps = 0;
  int64_t succeeded = 0;
  int64_t data_bytes = 0;
  double server_cpu_us_per_call = 0;
};

// Runs h2load against `address` and checks that every call returned a response.
LoadResult RunH2load(const std::string& address, const std::string& body_path,
                     int64_t calls, pid_t server_pid, int64_t response_bytes) {
  const std::string command =
      absl::StrCat("h2load -n ", calls, " -c 4 -m 32 -t 1 -d ", body_path,
                   " -H 'content-type: application/grpc' -H 'te: trailers' http://",
                   address, "/mgreg.v1.Registry/GetLatestCheckpoint 2>&1");
  const double cpu0 = CpuSeconds(server_pid);
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) Die("cannot run h2load");
  std::string output;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), pipe)) output.append(buf, n);
  if (pclose(pipe) != 0) Die(absl::StrCat("h2load failed:\n", output));
  const double cpu = CpuSeconds(server_pid) - cpu0;

  LoadResult r;
  std::smatch m;
  if (!std::regex_search(output, m,
                         std::regex(R"(finished in [0-9.]+m?s, ([0-9.]+) req/s)"))) {
    Die(absl::StrCat("no req/s in h2load output:\n", output));
  }
  r.qps = std::stod(m[1]);
  if (!std::regex_search(output, m, std::regex(R"(([0-9]+) succeeded)"))) {
    Die(absl::StrCat("no 'succeeded' in h2load output:\n", output));
  }
  r.succeeded = std::stoll(m[1]);
  if (!std::regex_search(output, m, std::regex(R"(\(([0-9]+)\) data)"))) {
    Die(absl::StrCat("no data bytes in h2load output:\n", output));
  }
  r.data_bytes = std::stoll(m[1]);
  if (r.succeeded != calls || r.data_bytes != calls * (5 + response_bytes)) {
    Die(absl::StrCat("h2load: ", r.succeeded, " of ", calls, " calls succeeded and ",
                     r.data_bytes, " data bytes arrived, expected ",
                     calls * (5 + response_bytes), ": some gRPC calls failed\n", output));
  }
  r.server_cpu_us_per_call = cpu * 1e6 / static_cast<double>(calls);
  return r;
}

int Main(int argc, char** argv) {
  int pairs = 5;
  int64_t calls = 200000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--pairs") pairs = std::atoi(argv[i + 1]);
    if (flag == "--calls") calls = std::atoll(argv[i + 1]);
  }
  PinToCpu(1);
  const std::string tmp = MakeTempDir("latest");
  auto server = StartServer(absl::StrCat(tmp, "/data"));
  std::unique_ptr<Client> client_owner = ConnectClient(server->address());
  Client& client = *client_owner;
  const std::string model = "bench/latest";
  // A small real checkpoint: index + 2 shards, at two steps.
  const std::string ckpt_dir = absl::StrCat(tmp, "/ckpt");
  std::filesystem::create_directories(ckpt_dir);
  for (int step = 1; step <= 2; ++step) {
    const std::string prefix =
        WriteBenchCheckpoint(ckpt_dir, "model.ckpt", step, static_cast<uint64_t>(step), 2,
                             256 << 10, 64 << 10);
    PushOptions push;
    push.metadata["loss"] = "0.125";
    CheckOk(client.Push(model, prefix, push).status(), "push");
  }
  // The real answer, checked with a real client before any load.
  absl::StatusOr<v1::Checkpoint> latest = client.GetLatestCheckpoint(model);
  CheckOk(latest.status(), "GetLatestCheckpoint");
  if (latest->step() != 2) Die("GetLatestCheckpoint did not return step 2");
  const int64_t response_bytes = static_cast<int64_t>(latest->ByteSizeLong());
  const std::string latest_path = absl::StrCat(tmp, "/latest.pb");
  {
    std::ofstream out(latest_path, std::ios::binary);
    latest->SerializeToOstream(&out);
  }
  auto bare = ChildProcess::Start({SelfPath(), "--bare-server", "--latest", latest_path},
                                  0, "listening on");
  {
    ClientOptions bare_options;
    bare_options.target = bare->address();
    auto bare_client = Client::Connect(bare_options);
    CheckOk(bare_client.status(), "connect to the bare server");
    absl::StatusOr<v1::Checkpoint> echo = (*bare_client)->GetLatestCheckpoint(model);
    CheckOk(echo.status(), "bare GetLatestCheckpoint");
    if (static_cast<int64_t>(echo->ByteSizeLong()) != response_bytes) {
      Die("the bare server's response has another size");
    }
  }
  // The request body: one gRPC message (flag 0, 4-byte big-endian length, protobuf).
  const std::string body_path = absl::StrCat(tmp, "/request.bin");
  {
    v1::GetLatestCheckpointRequest request;
    request.set_model(model);
    const std::string payload = request.SerializeAsString();
    std::string body(5, '\0');
    const uint32_t n = static_cast<uint32_t>(payload.size());
    body[1] = static_cast<char>(n >> 24);
    body[2] = static_cast<char>(n >> 16);
    body[3] = static_cast<char>(n >> 8);
    body[4] = static_cast<char>(n);
    body += payload;
    std::ofstream out(body_path, std::ios::binary);
    out << body;
  }
  // Warm-up.
  RunH2load(bare->address(), body_path, calls / 10, bare->pid(), response_bytes);
  RunH2load(server->address(), body_path, calls / 10, server->pid(), response_bytes);

  std::vector<double> ratios, extra_cpu, bare_qps, real_qps, bare_cpu, real_cpu;
  for (int pair = 1; pair <= pairs; ++pair) {
    const LoadResult b =
        RunH2load(bare->address(), body_path, calls, bare->pid(), response_bytes);
    const LoadResult r =
        RunH2load(server->address(), body_path, calls, server->pid(), response_bytes);
    ratios.push_back(r.qps / b.qps);
    extra_cpu.push_back(r.server_cpu_us_per_call - b.server_cpu_us_per_call);
    bare_qps.push_back(b.qps);
    real_qps.push_back(r.qps);
    bare_cpu.push_back(b.server_cpu_us_per_call);
    real_cpu.push_back(r.server_cpu_us_per_call);
    std::printf(
        "pair %d: bare %.0f QPS %.2f CPU-us/call, mgreg-server %.0f QPS %.2f "
        "CPU-us/call\n",
        pair, b.qps, b.server_cpu_us_per_call, r.qps, r.server_cpu_us_per_call);
    std::fflush(stdout);
  }
  bare.reset();
  server.reset();
  RemoveTree(tmp);

  const std::string figures = absl::StrFormat(
      "mgreg-server %.0f QPS %.2f CPU-us/call, bare callback echo %.0f QPS %.2f "
      "CPU-us/call; response %d bytes; h2load -c 4 -m 32, %d calls x %d pairs, all "
      "verified by DATA bytes",
      Median(real_qps), Median(real_cpu), Median(bare_qps), Median(bare_cpu),
      static_cast<int>(response_bytes), static_cast<int>(calls), pairs);
  PrintResult("latest", Median(ratios), 0.90, true, figures);
  PrintAbsoluteResult("latest-cpu", "extra_server_cpu_us_per_call", Median(extra_cpu),
                      2.0,
                      "median over pairs of mgreg-server minus bare CPU-us per call");
  return 0;
}

}  // namespace
}  // namespace mgreg::bench

int main(int argc, char** argv) {
  return mgreg::bench::BareServerOrBenchmark(argc, argv, &mgreg::bench::Main);
}
