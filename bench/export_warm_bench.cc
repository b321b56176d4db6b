// export-warm (../shared/PERF.md): GetMetaGraph with clear_devices + export_scope +
// collection_list on a >= 50 MB, >= 100k-node MetaGraphDef (GenerateMetaGraph, the
// export_bench graph) pushed as the .meta of a checkpoint to mgreg-server (RocksDB,
// pinned to CPU 0; the client on CPU 1). The first call (cold: read, filter, hash, cache)
// is timed once; then repeated calls (warm: served from the export cache, checked with
// the server's mgreg_export_cache_{hits,misses}_total) against the floor "a bare
// callback-API server streaming the same number of bytes in 1 MiB messages from memory"
// (bare_server). Both are read by a raw stub that discards the bytes (and checks their
// count); each sample is --calls calls back to back. Pairs floor, warm, ...; the ratio
// is the median of per-pair latency ratios (warm / floor). Client::FetchGraphBytes of
// the same request (which also verifies the SHA-256 on the client) is timed for the
// report.
//
//   export_warm_bench [--pairs N] [--calls K] [--nodes N]
// Also: export_warm_bench --bare-server ... (the floor's server; started by the
// benchmark).
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
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

std::unique_ptr<v1::Registry::Stub> RawStub(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return v1::Registry::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
}

// One GetMetaGraph call whose bytes are discarded; returns the bytes received and
// fails unless they are as many as the header announced.
int64_t StreamGraph(v1::Registry::Stub* stub, const v1::GetMetaGraphRequest& request,
                    v1::MetaGraphInfo* info) {
  grpc::ClientContext ctx;
  auto reader = stub->GetMetaGraph(&ctx, request);
  v1::MetaGraphChunk chunk;
  int64_t received = 0;
  bool first = true;
  while (reader->Read(&chunk)) {
    if (first) *info = chunk.info();
    first = false;
    received += static_cast<int64_t>(chunk.data().size());
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok() || received != info->size()) {
    Die(absl::StrCat("GetMetaGraph: ", status.error_message(), ", ", received, " of ",
                     info->size(), " bytes"));
  }
  return received;
}

// One ReadFile call of the bare server; fails unless `size` bytes arrive.
void StreamBare(v1::Registry::Stub* stub, int64_t size) {
  grpc::ClientContext ctx;
  v1::ReadFileRequest request;
  request.set_name("meta");
  auto reader = stub->ReadFile(&ctx, request);
  v1::FileChunk chunk;
  int64_t received = 0;
  while (reader->Read(&chunk)) received += static_cast<int64_t>(chunk.data().size());
  const grpc::Status status = reader->Finish();
  if (!status.ok() || received != size) {
    Die(absl::StrCat("bare stream: ", status.error_message(), ", ", received, " of ",
                     size, " bytes"));
  }
}

int Main(int argc, char** argv) {
  int pairs = 9;
  int calls = 30;
  int nodes = 240000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--pairs") pairs = std::atoi(argv[i + 1]);
    if (flag == "--calls") calls = std::atoi(argv[i + 1]);
    if (flag == "--nodes") nodes = std::atoi(argv[i + 1]);
  }
  PinToCpu(1);
  const std::string tmp = MakeTempDir("export-warm");
  RequireFreeSpace(tmp, 2ll << 30);
  const std::string graph = GenerateMetaGraph(nodes, 42);
  if (graph.size() < 50'000'000 || nodes < 100'000) {
    Die(
        absl::StrFormat("graph of %d nodes, %.1f MB: export-warm needs >= 50 MB, >= 100k "
                        "nodes",
                        nodes, graph.size() / kMB));
  }
  const std::string ckpt_dir = absl::StrCat(tmp, "/ckpt");
  std::filesystem::create_directories(ckpt_dir);
  const std::string prefix =
      WriteBenchCheckpoint(ckpt_dir, "model.ckpt", 1, 1, 1, 1 << 20, 256 << 10);
  {
    std::ofstream meta(prefix + ".meta", std::ios::binary);
    meta.write(graph.data(), static_cast<std::streamsize>(graph.size()));
    if (!meta) Die("cannot write the .meta");
  }

  auto server =
      StartServer(absl::StrCat(tmp, "/data"), {"--metrics-listen", "127.0.0.1:0"});
  const std::string metrics = MetricsAddress(*server);
  std::unique_ptr<Client> client_owner = ConnectClient(server->address());
  Client& client = *client_owner;
  const std::string model = "bench/export";
  auto pushed = client.Push(model, prefix, PushOptions());
  CheckOk(pushed.status(), "push");
  RemoveTree(ckpt_dir);

  v1::GetMetaGraphRequest request;
  request.set_model(model);
  request.set_step(1);
  v1::GraphOptions& graph_options = *request.mutable_options();
  graph_options.set_clear_devices(true);
  graph_options.set_export_scope("linear");
  for (const char* c :
       {"variables", "trainable_variables", "savers", "summaries", "train_op"}) {
    graph_options.add_collection_list(c);
  }
  graph_options.set_has_collection_list(true);

  auto stub = RawStub(server->address());
  // Connection up before the cold call: an unrelated cheap call.
  CheckOk(client.GetLatestCheckpoint(model).status(), "GetLatestCheckpoint");
  {
    grpc::ClientContext ctx;
    v1::GetLatestCheckpointRequest latest;
    latest.set_model(model);
    v1::Checkpoint out;
    if (!stub->GetLatestCheckpoint(&ctx, latest, &out).ok()) Die("GetLatestCheckpoint");
  }

  // Cold.
  v1::MetaGraphInfo info;
  double cpu0 = CpuSeconds(server->pid());
  double t0 = Now();
  const int64_t out_bytes = StreamGraph(stub.get(), request, &info);
  const double cold_s = Now() - t0;
  const double cold_cpu_s = CpuSeconds(server->pid()) - cpu0;
  std::string text = HttpGet(metrics, "/metrics");
  const double misses0 = MetricValue(text, "mgreg_export_cache_misses_total");
  const double hits0 = MetricValue(text, "mgreg_export_cache_hits_total");
  if (misses0 != 1) Die(absl::StrCat("the cold call counted ", misses0, " cache misses"));

  // The client's call (verifies the SHA-256): also checks the bytes are right.
  std::string fetched;
  t0 = Now();
  auto fetched_info = client.FetchGraphBytes(model, int64_t{1}, graph_options, &fetched);
  const double client_s = Now() - t0;
  CheckOk(fetched_info.status(), "FetchGraphBytes");
  if (static_cast<int64_t>(fetched.size()) != out_bytes) Die("FetchGraphBytes size");

  auto bare = ChildProcess::Start(
      {SelfPath(), "--bare-server", "--file", absl::StrCat("meta=", out_bytes)}, 0,
      "listening on");
  auto bare_stub = RawStub(bare->address());
  StreamBare(bare_stub.get(), out_bytes);  // warm-up
  StreamGraph(stub.get(), request, &info);

  std::vector<double> ratios, floor_ms, warm_ms, cpu_us, bare_cpu_us;
  for (int pair = 1; pair <= pairs; ++pair) {
    cpu0 = CpuSeconds(bare->pid());
    t0 = Now();
    for (int c = 0; c < calls; ++c) StreamBare(bare_stub.get(), out_bytes);
    const double floor_s = (Now() - t0) / calls;
    bare_cpu_us.push_back((CpuSeconds(bare->pid()) - cpu0) * 1e6 / calls);

    cpu0 = CpuSeconds(server->pid());
    t0 = Now();
    for (int c = 0; c < calls; ++c) StreamGraph(stub.get(), request, &info);
    const double warm_s = (Now() - t0) / calls;
    cpu_us.push_back((CpuSeconds(server->pid()) - cpu0) * 1e6 / calls);
    ratios.push_back(warm_s / floor_s);
    floor_ms.push_back(floor_s * 1e3);
    warm_ms.push_back(warm_s * 1e3);
    std::printf(
        "pair %d: bare stream %.2f ms, warm GetMetaGraph %.2f ms (server CPU %.0f "
        "us/call, bare %.0f)\n",
        pair, floor_ms.back(), warm_ms.back(), cpu_us.back(), bare_cpu_us.back());
    std::fflush(stdout);
  }
  text = HttpGet(metrics, "/metrics");
  const double hits = MetricValue(text, "mgreg_export_cache_hits_total") - hits0;
  const double misses = MetricValue(text, "mgreg_export_cache_misses_total") - misses0;
  if (misses != 0 || hits < pairs * calls) {
    Die(absl::StrCat("warm calls: ", hits, " cache hits and ", misses, " misses"));
  }
  // Channels closed before the servers stop (an open one delays mgreg-server's exit).
  bare_stub.reset();
  stub.reset();
  client_owner.reset();
  bare.reset();
  server.reset();
  RemoveTree(tmp);

  PrintResult(
      "export-warm", Median(ratios), 1.2, false,
      absl::StrFormat("warm %.2f ms vs bare stream %.2f ms of %.1f MB (%.0f MB/s vs "
                      "%.0f MB/s); server CPU %.0f us/call vs bare %.0f; cold (first "
                      "call) %.0f ms, server CPU %.0f ms; client FetchGraphBytes "
                      "(+SHA-256 check) %.1f ms; input %.1f MB / %d nodes, output "
                      "%lld nodes; %.0f cache hits, 0 misses after the cold call; "
                      "%d pairs of %d calls",
                      Median(warm_ms), Median(floor_ms), out_bytes / kMB,
                      out_bytes / (Median(warm_ms) / 1e3) / kMB,
                      out_bytes / (Median(floor_ms) / 1e3) / kMB, Median(cpu_us),
                      Median(bare_cpu_us), cold_s * 1e3, cold_cpu_s * 1e3, client_s * 1e3,
                      graph.size() / kMB, nodes,
                      static_cast<long long>(info.node_count()), hits, pairs, calls));
  return 0;
}

}  // namespace
}  // namespace mgreg::bench

int main(int argc, char** argv) {
  return mgreg::bench::BareServerOrBenchmark(argc, argv, &mgreg::bench::Main);
}
