// Shared pieces of the benchmarks in bench/ (see ../shared/PERF.md for the method):
// child processes pinned to a CPU, /proc accounting (CPU time, peak RSS), temp dirs
// under the build tree, medians and the RESULT line, and a writer of large TensorFlow
// V2 checkpoints that streams to disk instead of holding the shards in memory.
//
// Benchmarks abort (with a message on stderr) on any setup error: a benchmark that
// carries on after a failure prints figures that mean nothing. Aborting (Die, from any
// thread) first stops every child process the benchmark started and removes its
// MakeTempDir directories; a benchmark killed any other way (a crash, SIGKILL, Ctrl-C)
// takes its children with it (they get SIGTERM), though its directories stay.
#ifndef MGREG_BENCH_BENCH_UTIL_H_
#define MGREG_BENCH_BENCH_UTIL_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "client/client.h"

namespace mgreg::bench {

// Prints `what: status` to stderr and exits with status 2 unless `status` is OK.
void CheckOk(const absl::Status& status, absl::string_view what);

// A client of the server at `address`. Clients with different `connection` numbers get
// connections of their own (gRPC shares one between channels with equal arguments), as
// separate trainer or inference hosts would. `upload_message_bytes`: the client's PutFile
// message size (0: its default). Exits on error.
std::unique_ptr<Client> ConnectClient(const std::string& address, int connection = 0,
                                      size_t upload_message_bytes = 0);
// Prints the message, stops the child processes ChildProcess started and still runs
// (SIGTERM, SIGKILL after 10 s), removes the MakeTempDir directories not yet removed,
// and exits with status 2. Safe from any thread; a second caller waits for the exit.
[[noreturn]] void Die(absl::string_view message);

// Pins the calling thread (and the threads and processes it starts later) to `cpu`.
void PinToCpu(int cpu);

// A child process whose stdout is read until it prints a line containing `ready`.
// Destroying it sends SIGTERM and waits (SIGKILL after 10 s); so does Die. The child
// gets SIGTERM from the kernel when the thread that started it ends (PR_SET_PDEATHSIG):
// start it from the thread that outlives it (benchmarks use their main thread).
class ChildProcess {
 public:
  // Starts argv[0] (a path) pinned to `cpu` and waits up to 60 s for the ready line.
  static std::unique_ptr<ChildProcess> Start(const std::vector<std::string>& argv,
                                             int cpu, absl::string_view ready);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& ready_line() const { return ready_line_; }
  // The HOST:PORT after "listening on " in the ready line.
  std::string address() const;
  // Reads the next stdout line (blocking); empty at EOF.
  std::string ReadLine();

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string pending_;
  std::string ready_line_;
};

// utime + stime of every thread of `pid`, in seconds (from /proc/<pid>/stat).
double CpuSeconds(pid_t pid);
// VmHWM (peak resident set) of `pid`, in KiB.
int64_t PeakRssKib(pid_t pid);

// The directory holding the running executable.
std::string SelfDir();
// The path of the running executable.
std::string SelfPath();
// $MGREG_SERVER_BIN, else <build dir>/server/mgreg-server.
std::string ServerBinary();
// A fresh directory under $MGREG_BENCH_TMP (default <build dir>/tmp), removed by Die
// unless RemoveTree removed it first.
std::string MakeTempDir(absl::string_view tag);
void RemoveTree(const std::string& path);
// Fails (exits) unless the filesystem of `path` has `bytes` free.
void RequireFreeSpace(const std::string& path, int64_t bytes);

// Starts mgreg-server on 127.0.0.1:0 with a RocksDB data dir, pinned to CPU 0.
std::unique_ptr<ChildProcess> StartServer(
    const std::string& data_dir, const std::vector<std::string>& extra_args = {});

double Median(std::vector<double> values);
// The value at quantile q (0..1) of `values`, nearest rank.
double Percentile(std::vector<double> values, double q);

// The host:port after "metrics on http://" in a server's ready line (start the server
// with --metrics-listen 127.0.0.1:0); dies if there is none.
std::string MetricsAddress(const ChildProcess& server);
// The body of GET http://<host_port><path> (HTTP/1.0, plaintext); dies on errors.
std::string HttpGet(const std::string& host_port, const std::string& path);
// The sum of the samples of metric `name` in a Prometheus text exposition whose label
// set contains `label_match` (e.g. `method="PutFile"`; empty: every sample).
double MetricValue(const std::string& exposition, const std::string& name,
                   const std::string& label_match = "");

// Prints `RESULT <scenario> ratio=<r> target=<t> <PASS|MISS> (<figures>)`.
// `at_least`: the ratio passes when >= target (else when <= target).
void PrintResult(absl::string_view scenario, double ratio, double target, bool at_least,
                 absl::string_view figures);

// Prints `RESULT <scenario> <name>=<value> target=<t> <PASS|MISS> (<figures>)` for an
// absolute figure that passes when <= target.
void PrintAbsoluteResult(absl::string_view scenario, absl::string_view name, double value,
                         double target, absl::string_view figures);

// Seconds since an arbitrary point, monotonic.
inline double Now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline constexpr double kMiB = 1024.0 * 1024.0;
inline constexpr double kMB = 1e6;

// Writes a real TensorFlow V2 checkpoint `<dir>/<basename>-<step>`: `num_shards` data
// shards of `shard_bytes` each, made of float32 tensors of `tensor_bytes` whose values
// derive from `seed` (so every seed gives bytes no other seed shares, chunk by chunk),
// and the .index (a LevelDB table of BundleEntryProto with masked CRC32Cs) that
// describes them. No .meta. Returns the prefix.
std::string WriteBenchCheckpoint(const std::string& dir, const std::string& basename,
                                 int64_t step, uint64_t seed, int num_shards,
                                 int64_t shard_bytes, int64_t tensor_bytes);
// Total bytes of the files of the checkpoint at `prefix` (index + data shards).
int64_t CheckpointBytes(const std::string& prefix);
// The files of the checkpoint at `prefix`.
std::vector<std::string> CheckpointFiles(const std::string& prefix);

// Writes a real TensorFlow V2 checkpoint `<dir>/<basename>-<step>` whose float32 tensors
// of `tensor_bytes` each derive from their own seed (tensor_seeds[i] for tensor i), so
// two checkpoints that share a seed share that tensor's bytes exactly. The tensors are
// spread over `num_shards` data shards in order (the first shards get one more when the
// count does not divide). Returns the prefix.
std::string WriteBenchCheckpointTensors(const std::string& dir,
                                        const std::string& basename, int64_t step,
                                        const std::vector<uint64_t>& tensor_seeds,
                                        int num_shards, int64_t tensor_bytes);

// The disk floor of pushes (PERF.md): a receiver that, for each TCP connection, writes
// every byte received into a new file under `dir`, fsyncs it, acknowledges with one
// byte, then deletes the file. Prints "sink listening on 127.0.0.1:PORT"; never returns.
// Run it as a child process (ChildProcess::Start) pinned to the server's CPU.
// With `verify`, the sink also computes the chunked SHA-256 (common/file_digest.h: one
// SHA-256 pass over every byte, per 1 MiB piece, as the server's chunk addresses) of what
// it receives, on the same core, before writing it: the floor of a receiver that verifies
// every byte (push_bench's push-vs-verifying-floor).
[[noreturn]] void RunSink(const std::string& dir, bool verify = false);
// The main() of a benchmark that is also its own floor's sink: RunSink(argv[2]) when the
// first argument is `--sink`, RunSink(argv[2], true) when it is `--verifying-sink`, else
// `bench_main`.
int SinkOrBenchmark(int argc, char** argv, int (*bench_main)(int, char**));
// Sends the files over one connection to the sink at `address`; returns the seconds
// until the sink acknowledged that every byte is on disk. Fails unless `expect_bytes`
// were sent.
double SendToSink(const std::string& address, const std::vector<std::string>& files,
                  int64_t expect_bytes);

// A serialized MetaGraphDef of `nodes` nodes in the shape of a real tfx Estimator graph
// (top-level scopes "linear", "training", "dnn", "save", "head", ... of very different
// sizes, `_output_shapes` on every node, `_class` lists, explicit devices on ~10 %,
// small Const tensors, variables/savers/summaries/train_op collections). Deterministic
// for a given (nodes, seed); 240,000 nodes make about 60 MB.
std::string GenerateMetaGraph(int nodes, uint64_t seed);

}  // namespace mgreg::bench

#endif  // MGREG_BENCH_BENCH_UTIL_H_
