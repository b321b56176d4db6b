#include "bench/bench_util.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/crc32c.h"
#include "leveldb/env.h"
#include "leveldb/options.h"
#include "leveldb/table_builder.h"
#include "tensorflow/core/protobuf/tensor_bundle.pb.h"

namespace mgreg::bench {
namespace fs = std::filesystem;

void CheckOk(const absl::Status& status, absl::string_view what) {
  if (!status.ok()) Die(absl::StrCat(what, ": ", status.ToString()));
}

void Die(absl::string_view message) {
  std::fprintf(stderr, "bench: %.*s\n", static_cast<int>(message.size()), message.data());
  std::fflush(stdout);
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
  const pid_t pid = fork();
  if (pid < 0) Die("fork failed");
  if (pid == 0) {
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
    kill(pid_, SIGTERM);
    int status = 0;
    const double deadline = Now() + 10;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (Now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      usleep(10000);
    }
  }
  if (out_fd_ >= 0) close(out_fd_);
}

double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
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
  if (const char* env = std::getenv("MGREG_SERVER_BIN"); env != nullptr && *env) return env;
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
  return templ;
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

void RequireFreeSpace(const std::string& path, int64_t bytes) {
  struct statvfs st;
  if (statvfs(path.c_str(), &st) != 0) Die(absl::StrCat("statvfs ", path, " failed"));
  const int64_t free = static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
  if (free < bytes) {
    Die(absl::StrFormat("%s has %.1f GiB free, the benchmark needs %.1f GiB", path,
                        free / (kMiB * 1024), bytes / (kMiB * 1024)));
  }
}

void PrintAbsoluteResult(absl::string_view scenario, absl::string_view name, double value,
                         double target, absl::string_view figures) {
  std::printf("RESULT %.*s %.*s=%.2f target=%g %s%s%.*s%s\n",
              static_cast<int>(scenario.size()), scenario.data(),
              static_cast<int>(name.size()), name.data(), value, target,
              value <= target ? "PASS" : "MISS", figures.empty() ? "" : " (",
              static_cast<int>(figures.size()), figures.data(), figures.empty() ? "" : ")");
  std::fflush(stdout);
}

std::unique_ptr<ChildProcess> StartServer(const std::string& data_dir,
                                          const std::vector<std::string>& extra_args) {
  std::vector<std::string> argv = {ServerBinary(), "--listen", "127.0.0.1:0", "--data-dir",
                                   data_dir};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  return ChildProcess::Start(argv, /*cpu=*/0, "listening on");
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
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

}  // namespace

std::string WriteBenchCheckpoint(const std::string& dir, const std::string& basename,
                                 int64_t step, uint64_t seed, int num_shards,
                                 int64_t shard_bytes, int64_t tensor_bytes) {
  const std::string prefix = absl::StrCat(dir, "/", basename, "-", step);
  std::map<std::string, tensorflow::BundleEntryProto> entries;
  std::string buf(static_cast<size_t>(tensor_bytes), '\0');
  uint64_t state = (seed + 1) * 0x9E3779B97F4A7C15ull;
  for (int shard = 0; shard < num_shards; ++shard) {
    const std::string path =
        absl::StrFormat("%s.data-%05d-of-%05d", prefix, shard, num_shards);
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) Die(absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
    for (int64_t offset = 0; offset < shard_bytes; offset += tensor_bytes) {
      FillFloats(&buf, &state);
      tensorflow::BundleEntryProto& e =
          entries[absl::StrFormat("layer_%03d/kernel", static_cast<int>(entries.size()))];
      e.set_dtype(tensorflow::DT_FLOAT);
      e.mutable_shape()->add_dim()->set_size(tensor_bytes / 4);
      e.set_shard_id(shard);
      e.set_offset(offset);
      e.set_size(tensor_bytes);
      e.set_crc32c(MaskCrc32c(Crc32c(buf)));
      WriteAll(fd, buf.data(), buf.size(), path);
    }
    // On disk before the benchmark starts, so no writeback of it competes with it.
    if (fsync(fd) != 0) Die(absl::StrCat("cannot sync ", path, ": ", std::strerror(errno)));
    close(fd);
  }
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
  return prefix;
}

std::vector<std::string> CheckpointFiles(const std::string& prefix) {
  const fs::path p(prefix);
  const std::string stem = p.filename().string() + ".";
  std::vector<std::string> out;
  for (const fs::directory_entry& e : fs::directory_iterator(p.parent_path())) {
    if (e.path().filename().string().rfind(stem, 0) == 0) out.push_back(e.path().string());
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

}  // namespace mgreg::bench
