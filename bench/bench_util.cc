#include "bench/bench_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/crc32c.h"
#include "common/file_digest.h"
#include "leveldb/env.h"
#include "leveldb/options.h"
#include "leveldb/table_builder.h"
#include "tensorflow/core/framework/variable.pb.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"
#include "tensorflow/core/protobuf/saver.pb.h"
#include "tensorflow/core/protobuf/tensor_bundle.pb.h"

namespace mgreg::bench {
namespace fs = std::filesystem;

namespace {

// What this process started and has not stopped or removed yet, for Die: the child
// processes of ChildProcess (mgreg-server, floors' servers, sinks) and MakeTempDir's
// directories. A function's static, as benchmarks call Die from any thread.
struct Started {
  absl::Mutex mu;
  std::vector<pid_t> children ABSL_GUARDED_BY(mu);
  std::vector<std::string> temp_dirs ABSL_GUARDED_BY(mu);
};
Started& started() {
  static Started* const s = new Started();
  return *s;
}

void Forget(std::vector<pid_t>& pids, pid_t pid) {
  pids.erase(std::remove(pids.begin(), pids.end(), pid), pids.end());
}

// SIGTERM, then waits; SIGKILL after 10 s (mgreg-server drains its calls on SIGTERM).
void StopProcess(pid_t pid) {
  kill(pid, SIGTERM);
  int status = 0;
  const double deadline = Now() + 10;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (Now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    usleep(10000);
  }
}

}  // namespace

void CheckOk(const absl::Status& status, absl::string_view what) {
  if (!status.ok()) Die(absl::StrCat(what, ": ", status.ToString()));
}

void Die(absl::string_view message) {
  // One Die at a time: a second thread's waits here until the first has exited.
  static absl::Mutex* const dying = new absl::Mutex();
  dying->Lock();
  std::fprintf(stderr, "bench: %.*s\n", static_cast<int>(message.size()), message.data());
  std::fflush(stdout);
  std::vector<pid_t> children;
  std::vector<std::string> temp_dirs;
  {
    absl::MutexLock lock(&started().mu);
    children.swap(started().children);
    temp_dirs.swap(started().temp_dirs);
  }
  // The servers first, then the directories they wrote to.
  for (pid_t pid : children) {
    std::fprintf(stderr, "bench: stopping child process %d\n", static_cast<int>(pid));
    StopProcess(pid);
  }
  for (const std::string& dir : temp_dirs) {
    std::fprintf(stderr, "bench: removing %s\n", dir.c_str());
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::exit(2);
}

void PinToCpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    Die(absl::StrCat("cannot pin to CPU ", cpu, ": ", std::strerror(errno)));
  }
}

std::unique_ptr<ChildProcess> ChildProcess::Start(const std::vector<std::string>& argv,
                                                  int cpu, absl::string_view ready) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) Die("pipe failed");
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) Die("fork failed");
  if (pid == 0) {
    // Whatever ends the benchmark (a crash, SIGKILL, Ctrl-C) ends its children too: the
    // kernel sends SIGTERM when the thread that started them ends. A benchmark that
    // ended before the prctl is seen by getppid.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof(set), &set);
    dup2(fds[1], STDOUT_FILENO);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    std::fprintf(stderr, "bench: cannot exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  {
    absl::MutexLock lock(&started().mu);
    started().children.push_back(pid);
  }
  std::unique_ptr<ChildProcess> child(new ChildProcess());
  child->pid_ = pid;
  child->out_fd_ = fds[0];
  const double deadline = Now() + 60;
  while (Now() < deadline) {
    std::string line = child->ReadLine();
    if (line.empty()) break;  // EOF: it died
    if (line.find(std::string(ready)) != std::string::npos) {
      child->ready_line_ = line;
      return child;
    }
  }
  Die(absl::StrCat("'", argv[0], "' did not print '", ready, "'"));
}

std::string ChildProcess::ReadLine() {
  for (;;) {
    const size_t nl = pending_.find('\n');
    if (nl != std::string::npos) {
      std::string line = pending_.substr(0, nl + 1);
      pending_.erase(0, nl + 1);
      return line;
    }
    char buf[4096];
    const ssize_t n = read(out_fd_, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string rest = std::move(pending_);
      pending_.clear();
      return rest;
    }
    pending_.append(buf, static_cast<size_t>(n));
  }
}

std::string ChildProcess::address() const {
  const std::string key = "listening on ";
  const size_t at = ready_line_.find(key);
  if (at == std::string::npos) Die(absl::StrCat("no address in: ", ready_line_));
  const size_t begin = at + key.size();
  const size_t end = ready_line_.find_first_of(" \n", begin);
  return ready_line_.substr(begin, end - begin);
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    {
      absl::MutexLock lock(&started().mu);
      Forget(started().children, pid_);
    }
    StopProcess(pid_);
  }
  if (out_fd_ >= 0) close(out_fd_);
}

double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  // Fields after the ")" that closes the command name; utime and stime are fields 14
  // and 15 of the whole line, i.e. the 12th and 13th after it.
  const size_t close = text.rfind(')');
  if (close == std::string::npos) Die(absl::StrCat("cannot read /proc/", pid, "/stat"));
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

int64_t PeakRssKib(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
  }
  Die(absl::StrCat("no VmHWM in /proc/", pid, "/status"));
}

std::string SelfPath() { return fs::read_symlink("/proc/self/exe").string(); }

std::string SelfDir() { return fs::path(SelfPath()).parent_path().string(); }

std::string ServerBinary() {
  if (const char* env = std::getenv("MGREG_SERVER_BIN"); env != nullptr && *env)
    return env;
  return (fs::path(SelfDir()).parent_path() / "server" / "mgreg-server").string();
}

std::string MakeTempDir(absl::string_view tag) {
  std::string base;
  if (const char* env = std::getenv("MGREG_BENCH_TMP"); env != nullptr && *env) {
    base = env;
  } else {
    base = (fs::path(SelfDir()).parent_path() / "tmp").string();
  }
  fs::create_directories(base);
  std::string templ = absl::StrCat(base, "/", tag, "-XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) Die(absl::StrCat("mkdtemp in ", base, " failed"));
  absl::MutexLock lock(&started().mu);
  started().temp_dirs.push_back(templ);
  return templ;
}

void RemoveTree(const std::string& path) {
  {
    absl::MutexLock lock(&started().mu);
    std::vector<std::string>& dirs = started().temp_dirs;
    dirs.erase(std::remove(dirs.begin(), dirs.end(), path), dirs.end());
  }
  std::error_code ec;
  fs::remove_all(path, ec);
}

void RequireFreeSpace(const std::string& path, int64_t bytes) {
  struct statvfs st;
  if (statvfs(path.c_str(), &st) != 0) Die(absl::StrCat("statvfs ", path, " failed"));
  const int64_t free =
      static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
  if (free < bytes) {
    Die(absl::StrFormat("%s has %.1f GiB free, the benchmark needs %.1f GiB", path,
                        free / (kMiB * 1024), bytes / (kMiB * 1024)));
  }
}

void PrintAbsoluteResult(absl::string_view scenario, absl::string_view name, double value,
                         double target, absl::string_view figures) {
  std::printf(
      "RESULT %.*s %.*s=%.2f target=%g %s%s%.*s%s\n", static_cast<int>(scenario.size()),
      scenario.data(), static_cast<int>(name.size()), name.data(), value, target,
      value <= target ? "PASS" : "MISS", figures.empty() ? "" : " (",
      static_cast<int>(figures.size()), figures.data(), figures.empty() ? "" : ")");
  std::fflush(stdout);
}

std::unique_ptr<ChildProcess> StartServer(const std::string& data_dir,
                                          const std::vector<std::string>& extra_args) {
  std::vector<std::string> argv = {ServerBinary(), "--listen", "127.0.0.1:0",
                                   "--data-dir", data_dir};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  return ChildProcess::Start(argv, /*cpu=*/0, "listening on");
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = std::ceil(q * static_cast<double>(values.size()));
  const size_t i = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return values[std::min(i, values.size() - 1)];
}

std::string MetricsAddress(const ChildProcess& server) {
  const std::string key = "metrics on http://";
  const std::string& line = server.ready_line();
  const size_t at = line.find(key);
  if (at == std::string::npos) Die(absl::StrCat("no metrics address in: ", line));
  const size_t begin = at + key.size();
  return line.substr(begin, line.find('/', begin) - begin);
}

std::string HttpGet(const std::string& host_port, const std::string& path) {
  const size_t colon = host_port.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(host_port.substr(colon + 1), &port)) {
    Die(absl::StrCat("bad address ", host_port));
  }
  const int sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr) != 1 ||
      connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Die(absl::StrCat("cannot connect to ", host_port));
  }
  const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", host_port,
                                           "\r\nConnection: close\r\n\r\n");
  if (send(sock, request.data(), request.size(), 0) !=
      static_cast<ssize_t>(request.size())) {
    Die(absl::StrCat("cannot send to ", host_port));
  }
  std::string response;
  char buf[16384];
  for (;;) {
    const ssize_t n = read(sock, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) Die(absl::StrCat("cannot read from ", host_port));
    if (n == 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  close(sock);
  const size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 ||
      response.find(" 200 ") > response.find("\r\n") || body == std::string::npos) {
    Die(absl::StrCat("GET http://", host_port, path,
                     " failed: ", response.substr(0, 200)));
  }
  return response.substr(body + 4);
}

double MetricValue(const std::string& exposition, const std::string& name,
                   const std::string& label_match) {
  double sum = 0;
  std::istringstream lines(exposition);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(name, 0) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != '{' && next != ' ') continue;  // another metric sharing the prefix
    if (!label_match.empty() && line.find(label_match) == std::string::npos) continue;
    const size_t space = line.rfind(' ');
    double v = 0;
    if (space != std::string::npos && absl::SimpleAtod(line.substr(space + 1), &v))
      sum += v;
  }
  return sum;
}

void PrintResult(absl::string_view scenario, double ratio, double target, bool at_least,
                 absl::string_view figures) {
  const bool pass = at_least ? ratio >= target : ratio <= target;
  std::printf("RESULT %.*s ratio=%.3f target=%.2f %s (%.*s)\n",
              static_cast<int>(scenario.size()), scenario.data(), ratio, target,
              pass ? "PASS" : "MISS", static_cast<int>(figures.size()), figures.data());
  std::fflush(stdout);
}

namespace {

void WriteAll(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) Die(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// Float32 values in [-1, 1) from a xorshift64 stream.
void FillFloats(std::string* buf, uint64_t* state) {
  uint64_t x = *state;
  char* out = buf->data();
  const size_t n = buf->size() / 4;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const float f = static_cast<float>(x >> 40) / static_cast<float>(1 << 23) - 1.0f;
    std::memcpy(out + i * 4, &f, 4);
  }
  *state = x;
}

// Writes `<prefix>.index`: the header and `entries` (a LevelDB table, no compression).
void WriteBundleIndex(
    const std::string& prefix, int num_shards,
    const std::map<std::string, tensorflow::BundleEntryProto>& entries) {
  leveldb::WritableFile* file = nullptr;
  leveldb::Status s = leveldb::Env::Default()->NewWritableFile(prefix + ".index", &file);
  if (!s.ok()) Die(s.ToString());
  std::unique_ptr<leveldb::WritableFile> owned(file);
  leveldb::Options options;
  options.compression = leveldb::kNoCompression;
  leveldb::TableBuilder builder(options, file);
  tensorflow::BundleHeaderProto header;
  header.set_num_shards(num_shards);
  header.mutable_version()->set_producer(1);
  builder.Add("", header.SerializeAsString());
  for (const auto& [name, entry] : entries) builder.Add(name, entry.SerializeAsString());
  s = builder.Finish();
  if (s.ok()) s = file->Close();
  if (!s.ok()) Die(s.ToString());
}

// Creates shard file `path` of a benchmark checkpoint.
int CreateShard(const std::string& path) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Die(absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  return fd;
}

// Appends `buf` (one float tensor) to the shard file `fd` (`path`) and records it in
// `entries` as `name`, at `offset` of shard `shard`.
void AppendTensor(int fd, const std::string& path, const std::string& buf,
                  const std::string& name, int shard, int64_t offset,
                  std::map<std::string, tensorflow::BundleEntryProto>* entries) {
  tensorflow::BundleEntryProto& e = (*entries)[name];
  e.set_dtype(tensorflow::DT_FLOAT);
  e.mutable_shape()->add_dim()->set_size(static_cast<int64_t>(buf.size()) / 4);
  e.set_shard_id(shard);
  e.set_offset(offset);
  e.set_size(static_cast<int64_t>(buf.size()));
  e.set_crc32c(MaskCrc32c(Crc32c(buf)));
  WriteAll(fd, buf.data(), buf.size(), path);
}

// On disk before the benchmark starts, so no writeback of it competes with it.
void SyncAndClose(int fd, const std::string& path) {
  if (fsync(fd) != 0) Die(absl::StrCat("cannot sync ", path, ": ", std::strerror(errno)));
  close(fd);
}

std::string ShardPath(const std::string& prefix, int shard, int num_shards) {
  return absl::StrFormat("%s.data-%05d-of-%05d", prefix, shard, num_shards);
}

}  // namespace

std::string WriteBenchCheckpoint(const std::string& dir, const std::string& basename,
                                 int64_t step, uint64_t seed, int num_shards,
                                 int64_t shard_bytes, int64_t tensor_bytes) {
  const std::string prefix = absl::StrCat(dir, "/", basename, "-", step);
  std::map<std::string, tensorflow::BundleEntryProto> entries;
  std::string buf(static_cast<size_t>(tensor_bytes), '\0');
  uint64_t state = (seed + 1) * 0x9E3779B97F4A7C15ull;
  for (int shard = 0; shard < num_shards; ++shard) {
    const std::string path = ShardPath(prefix, shard, num_shards);
    const int fd = CreateShard(path);
    for (int64_t offset = 0; offset < shard_bytes; offset += tensor_bytes) {
      FillFloats(&buf, &state);
      AppendTensor(fd, path, buf,
                   absl::StrFormat("layer_%03d/kernel", static_cast<int>(entries.size())),
                   shard, offset, &entries);
    }
    SyncAndClose(fd, path);
  }
  WriteBundleIndex(prefix, num_shards, entries);
  return prefix;
}

std::string WriteBenchCheckpointTensors(const std::string& dir,
                                        const std::string& basename, int64_t step,
                                        const std::vector<uint64_t>& tensor_seeds,
                                        int num_shards, int64_t tensor_bytes) {
  const std::string prefix = absl::StrCat(dir, "/", basename, "-", step);
  std::map<std::string, tensorflow::BundleEntryProto> entries;
  std::string buf(static_cast<size_t>(tensor_bytes), '\0');
  const int count = static_cast<int>(tensor_seeds.size());
  int next = 0;
  for (int shard = 0; shard < num_shards; ++shard) {
    const int in_shard = count / num_shards + (shard < count % num_shards ? 1 : 0);
    const std::string path = ShardPath(prefix, shard, num_shards);
    const int fd = CreateShard(path);
    for (int k = 0; k < in_shard; ++k, ++next) {
      uint64_t state = (tensor_seeds[next] + 1) * 0x9E3779B97F4A7C15ull;
      FillFloats(&buf, &state);
      AppendTensor(fd, path, buf, absl::StrFormat("layer_%03d/kernel", next), shard,
                   static_cast<int64_t>(k) * tensor_bytes, &entries);
    }
    SyncAndClose(fd, path);
  }
  WriteBundleIndex(prefix, num_shards, entries);
  return prefix;
}

std::vector<std::string> CheckpointFiles(const std::string& prefix) {
  const fs::path p(prefix);
  const std::string stem = p.filename().string() + ".";
  std::vector<std::string> out;
  for (const fs::directory_entry& e : fs::directory_iterator(p.parent_path())) {
    if (e.path().filename().string().rfind(stem, 0) == 0)
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

int64_t CheckpointBytes(const std::string& prefix) {
  int64_t total = 0;
  for (const std::string& f : CheckpointFiles(prefix)) {
    total += static_cast<int64_t>(fs::file_size(f));
  }
  return total;
}

constexpr size_t kSinkIoBytes = 1u << 20;

int SinkOrBenchmark(int argc, char** argv, int (*bench_main)(int, char**)) {
  if (argc >= 3 && std::string(argv[1]) == "--sink") RunSink(argv[2]);
  if (argc >= 3 && std::string(argv[1]) == "--verifying-sink") RunSink(argv[2], true);
  return bench_main(argc, argv);
}

void RunSink(const std::string& dir, bool verify) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 4) != 0) {
    Die("sink: cannot listen");
  }
  socklen_t len = sizeof(addr);
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("sink listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
  std::fflush(stdout);
  std::string buf(kSinkIoBytes, '\0');
  for (int n = 0;; ++n) {
    const int conn = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno == EINTR) continue;
      Die("sink: accept failed");
    }
    const std::string path = absl::StrCat(dir, "/received-", n);
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) Die(absl::StrCat("sink: cannot create ", path));
    ChunkedSha256 digest;
    for (;;) {
      const ssize_t r = read(conn, buf.data(), buf.size());
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) Die("sink: read failed");
      if (r == 0) break;
      if (verify) digest.Update(absl::string_view(buf.data(), static_cast<size_t>(r)));
      for (ssize_t done = 0; done < r;) {
        const ssize_t w = write(fd, buf.data() + done, static_cast<size_t>(r - done));
        if (w <= 0) Die(absl::StrCat("sink: write failed: ", std::strerror(errno)));
        done += w;
      }
    }
    if (fsync(fd) != 0) Die("sink: fsync failed");
    close(fd);
    // The digest is computed like the server's; finishing it is part of the work.
    if (verify && digest.HexDigest().size() != 64) Die("sink: bad digest");
    const char ack = 1;
    if (write(conn, &ack, 1) != 1) Die("sink: ack failed");
    close(conn);
    unlink(path.c_str());
  }
}

double SendToSink(const std::string& address, const std::vector<std::string>& files,
                  int64_t expect_bytes) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &port)) Die("bad sink address");
  std::string buf(kSinkIoBytes, '\0');
  const double start = Now();
  const int sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Die("cannot connect to the sink");
  }
  int64_t sent = 0;
  for (const std::string& f : files) {
    const int fd = open(f.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) Die(absl::StrCat("cannot open ", f));
    for (;;) {
      const ssize_t r = read(fd, buf.data(), buf.size());
      if (r < 0) Die(absl::StrCat("cannot read ", f));
      if (r == 0) break;
      for (ssize_t done = 0; done < r;) {
        const ssize_t w = send(sock, buf.data() + done, static_cast<size_t>(r - done), 0);
        if (w <= 0) Die("send to the sink failed");
        done += w;
      }
      sent += r;
    }
    close(fd);
  }
  shutdown(sock, SHUT_WR);
  char ack = 0;
  if (read(sock, &ack, 1) != 1) Die("the sink did not acknowledge");
  const double seconds = Now() - start;
  close(sock);
  if (sent != expect_bytes)
    Die("sent a different number of bytes than the checkpoint has");
  return seconds;
}

namespace {

// Moved from export_bench.cc (its output is unchanged for the same node count and seed).
struct ScopeShare {
  const char* name;
  int weight;  // relative node count, as in the tfx graph
};

// Top-level scopes and their relative sizes in the tfx graph (DATA.md).
constexpr ScopeShare kScopes[] = {
    {"linear", 826},
    {"training", 694},
    {"dnn", 231},
    {"save", 143},
    {"head", 116},
    {"report_uninitialized_variables", 90},
    {"report_uninitialized_variables_1", 90},
    {"zero_fraction", 59},
    {"list_files", 25},
    {"gradients", 200},
};

constexpr const char* kOps[] = {"Identity", "Add",   "MatMul",         "Mul", "Reshape",
                                "ConcatV2", "Const", "ReadVariableOp", "Sum", "Cast"};

}  // namespace

std::string GenerateMetaGraph(int nodes, uint64_t seed) {
  std::mt19937_64 generator(seed);
  std::mt19937_64* rng = &generator;
  tensorflow::MetaGraphDef mg;
  auto* info = mg.mutable_meta_info_def();
  info->set_tensorflow_version("2.9.0-dev20220227");
  info->set_tensorflow_git_version("v1.12.1-72101-g000000");
  for (const char* op : kOps) {
    auto* def = info->mutable_stripped_op_list()->add_op();
    def->set_name(op);
    auto* attr = def->add_attr();
    attr->set_name("T");
    attr->set_type("type");
  }
  auto* graph = mg.mutable_graph_def();
  graph->mutable_versions()->set_producer(1054);
  graph->mutable_versions()->set_min_consumer(12);

  int total_weight = 0;
  for (const auto& s : kScopes) total_weight += s.weight;
  std::vector<std::string> names;
  names.reserve(nodes);
  std::uniform_int_distribution<int> pick_weight(0, total_weight - 1);
  std::uniform_int_distribution<int> pct(0, 99);
  for (int i = 0; i < nodes; ++i) {
    int w = pick_weight(*rng);
    const char* top = kScopes[0].name;
    for (const auto& s : kScopes) {
      if (w < s.weight) {
        top = s.name;
        break;
      }
      w -= s.weight;
    }
    const char* op = kOps[(*rng)() % (sizeof(kOps) / sizeof(kOps[0]))];
    std::string name = absl::StrCat(top, "/layer_", (*rng)() % 12, "/block_",
                                    (*rng)() % 40, "/", op, "_", i);
    tensorflow::NodeDef* n = graph->add_node();
    n->set_name(name);
    n->set_op(op);
    int inputs = i == 0 ? 0 : 1 + static_cast<int>((*rng)() % 3);
    for (int k = 0; k < inputs; ++k) {
      // Mostly nearby nodes (same scope), sometimes far away (other scopes).
      int j = pct(*rng) < 80 ? std::max(0, i - 1 - static_cast<int>((*rng)() % 20))
                             : static_cast<int>((*rng)() % i);
      std::string in = names[j];
      if (pct(*rng) < 10)
        in = "^" + in;
      else if (pct(*rng) < 20)
        in += ":1";
      n->add_input(in);
    }
    if (pct(*rng) < 10)
      n->set_device(pct(*rng) < 50 ? "/device:CPU:0"
                                   : "/job:ps/replica:0/task:1/device:GPU:0");
    (*n->mutable_attr())["T"].set_type(tensorflow::DT_FLOAT);
    auto* shapes = (*n->mutable_attr())["_output_shapes"].mutable_list();
    for (int s = 0; s < 1 + static_cast<int>((*rng)() % 2); ++s) {
      auto* shape = shapes->add_shape();
      for (int d = 0; d < 2; ++d)
        shape->add_dim()->set_size(d == 0 ? -1 : 64 + (*rng)() % 64);
    }
    if (pct(*rng) < 15) {
      (*n->mutable_attr())["_class"].mutable_list()->add_s(
          absl::StrCat("loc:@", names.empty() ? name : names[(*rng)() % names.size()]));
    }
    if (std::strcmp(op, "Const") == 0) {
      auto* t = (*n->mutable_attr())["value"].mutable_tensor();
      t->set_dtype(tensorflow::DT_FLOAT);
      t->mutable_tensor_shape()->add_dim()->set_size(32);
      std::string content(128, '\0');
      for (char& c : content) c = static_cast<char>((*rng)());
      t->set_tensor_content(content);
    }
    names.push_back(std::move(name));
  }

  auto& collections = *mg.mutable_collection_def();
  for (int v = 0; v < 2000; ++v) {
    tensorflow::VariableDef var;
    const char* top = kScopes[v % 3].name;
    std::string base = absl::StrCat(top, "/layer_", v % 12, "/kernel_", v);
    var.set_variable_name(base + ":0");
    var.set_initializer_name(base + "/Assign");
    var.set_snapshot_name(base + "/Read/ReadVariableOp:0");
    var.set_initial_value_name(base + "/Initializer/zeros:0");
    var.set_trainable(true);
    var.set_is_resource(true);
    std::string bytes = var.SerializeAsString();
    collections["variables"].mutable_bytes_list()->add_value(bytes);
    collections["trainable_variables"].mutable_bytes_list()->add_value(bytes);
  }
  tensorflow::SaverDef saver;
  saver.set_filename_tensor_name("save/Const:0");
  saver.set_save_tensor_name("save/Identity:0");
  saver.set_restore_op_name("save/restore_all");
  saver.set_max_to_keep(5);
  saver.set_sharded(true);
  saver.set_version(tensorflow::SaverDef::V2);
  *mg.mutable_saver_def() = saver;
  collections["savers"].mutable_bytes_list()->add_value(saver.SerializeAsString());
  for (int s = 0; s < 200; ++s) {
    collections["summaries"].mutable_node_list()->add_value(
        names[(s * 7919) % names.size()] + ":0");
  }
  collections["train_op"].mutable_node_list()->add_value(names.back());
  return mg.SerializeAsString();
}

std::unique_ptr<Client> ConnectClient(const std::string& address, int connection,
                                      size_t upload_message_bytes) {
  ClientOptions options;
  options.target = address;
  if (upload_message_bytes > 0) options.upload_message_bytes = upload_message_bytes;
  // A different (and harmless) message limit is a different channel argument.
  options.max_message_bytes = (16 << 20) + connection;
  auto client = Client::Connect(options);
  CheckOk(client.status(), "connect");
  return std::move(*client);
}

}  // namespace mgreg::bench
