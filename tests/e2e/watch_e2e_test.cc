// Watchers against the real server process: 1,000 idle watchers cost little memory,
// no threads and no CPU, and every one of them receives the next commit.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "gtest/gtest.h"
#include "mgreg/v1/registry.grpc.pb.h"
#include "tests/testing/checkpoint_builder.h"
#include "tests/testing/process_util.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;

// A field of /proc/<pid>/status ("VmRSS", "Threads"), as a number (kB for sizes).
int64_t ProcStatus(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::vector<std::string> parts =
        absl::StrSplit(line.substr(field.size() + 1), ' ', absl::SkipWhitespace());
    int64_t v = 0;
    if (!parts.empty() && absl::SimpleAtoi(parts[0], &v)) return v;
  }
  return -1;
}

// utime + stime of a process, in clock ticks.
int64_t CpuTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  std::vector<std::string> fields =
      absl::StrSplit(stat.substr(stat.rfind(')') + 2), ' ', absl::SkipWhitespace());
  int64_t utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return -1;
  }
  return utime + stime;
}

// Many watch streams driven by one completion queue (no thread each), spread over
// connections of `per_connection` streams (the server allows 100 streams at once on
// one connection, as an inference host fleet would open them).
class WatchCrowd {
 public:
  WatchCrowd(const std::string& address, int n, int per_connection = 50) {
    for (int i = 0; i < n; ++i) streams_.emplace_back();
    v1::WatchCheckpointsRequest request;
    request.set_model("m");
    request.set_since_revision(-1);
    for (int i = 0; i < n; ++i) {
      if (i % per_connection == 0) {
        grpc::ChannelArguments args;
        // A connection of its own (channels with equal arguments share one).
        args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
        auto channel =
            grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
        stubs_.push_back(v1::Registry::NewStub(channel));
      }
      Stream& s = streams_[i];
      s.reader = stubs_.back()->PrepareAsyncWatchCheckpoints(&s.ctx, request, &cq_);
      s.reader->StartCall(Tag(i, kStarted));
    }
  }

  ~WatchCrowd() {
    for (Stream& s : streams_) s.ctx.TryCancel();
    const absl::Time end = absl::Now() + absl::Seconds(30);
    while (Finished() < static_cast<int>(streams_.size()) && absl::Now() < end) Step();
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }

  // Drives the queue until every stream has received `events` messages (PROGRESS
  // included) or `deadline` passes. Returns how many streams got there.
  int WaitForEvents(int events, absl::Duration deadline) {
    const absl::Time end = absl::Now() + deadline;
    for (;;) {
      int done = 0;
      for (const Stream& s : streams_) done += s.received >= events ? 1 : 0;
      if (done == static_cast<int>(streams_.size()) || absl::Now() >= end) return done;
      Step();
    }
  }

 private:
  enum Kind { kStarted = 0, kRead = 1, kFinished = 2 };
  static void* Tag(int index, int kind) {
    return reinterpret_cast<void*>((static_cast<intptr_t>(index) << 2) | kind);
  }

  int Finished() const {
    int n = 0;
    for (const Stream& s : streams_) n += s.finished ? 1 : 0;
    return n;
  }

  // Handles one completion (waiting at most 100 ms for it).
  void Step() {
    void* tag;
    bool ok;
    const auto status = cq_.AsyncNext(
        &tag, &ok, std::chrono::system_clock::now() + std::chrono::milliseconds(100));
    if (status != grpc::CompletionQueue::GOT_EVENT) return;
    const int index = static_cast<int>(reinterpret_cast<intptr_t>(tag) >> 2);
    const int kind = static_cast<int>(reinterpret_cast<intptr_t>(tag) & 3);
    Stream& s = streams_[index];
    if (kind == kFinished) {
      s.finished = true;
    } else if (!ok) {
      s.reader->Finish(&s.status, Tag(index, kFinished));
    } else {
      if (kind == kRead) ++s.received;
      s.reader->Read(&s.event, Tag(index, kRead));
    }
  }
  struct Stream {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientAsyncReader<v1::WatchEvent>> reader;
    v1::WatchEvent event;
    grpc::Status status;
    int received = 0;
    bool finished = false;
  };

  std::vector<std::unique_ptr<v1::Registry::Stub>> stubs_;
  grpc::CompletionQueue cq_;
  std::deque<Stream> streams_;  // deque: Stream cannot move
};

TEST(WatchE2eTest, AThousandIdleWatchersCostLittleAndAllSeeTheNextCommit) {
  TempDir tmp;
  ServerProcess server({"--data-dir", tmp.Join("data")});
  ASSERT_TRUE(server.started());
  ClientOptions options;
  options.target = server.address();
  auto client = std::move(Client::Connect(options)).value();
  auto push = [&](int64_t step) {
    CheckpointSpec spec;
    spec.directory = tmp.Join("train");
    fs::create_directories(spec.directory);
    spec.step = step;
    spec.tensors = {{"w", FloatBytes(1000, static_cast<uint32_t>(step)), 0}};
    return client->Push("m", WriteCheckpoint(spec), PushOptions()).ok();
  };
  ASSERT_TRUE(push(1));
  const int64_t rss_before = ProcStatus(server.pid(), "VmRSS");
  const int64_t threads_before = ProcStatus(server.pid(), "Threads");

  constexpr int kWatchers = 1000;
  WatchCrowd crowd(server.address(), kWatchers);
  ASSERT_EQ(crowd.WaitForEvents(1, absl::Seconds(60)), kWatchers);  // all live
  const int64_t rss_with = ProcStatus(server.pid(), "VmRSS");
  const int64_t threads_with = ProcStatus(server.pid(), "Threads");
  // Idle: one second in which the server burns (almost) no CPU.
  const int64_t ticks_before = CpuTicks(server.pid());
  absl::SleepFor(absl::Seconds(1));
  const int64_t idle_ticks = CpuTicks(server.pid()) - ticks_before;
  const int64_t ticks_per_second = sysconf(_SC_CLK_TCK);
  std::printf("1000 idle watchers: RSS %+ld kB, threads %+ld, idle CPU %ld ticks/s\n",
              static_cast<long>(rss_with - rss_before),
              static_cast<long>(threads_with - threads_before),
              static_cast<long>(idle_ticks));
  EXPECT_LE(rss_with - rss_before, 32 * 1024);  // a few MB, not a thread stack each
  EXPECT_LE(threads_with - threads_before, 4);
  EXPECT_LE(idle_ticks, ticks_per_second / 10);

  // The next commit reaches every one of them.
  ASSERT_TRUE(push(2));
  EXPECT_EQ(crowd.WaitForEvents(2, absl::Seconds(60)), kWatchers);
}

}  // namespace
}  // namespace mgreg::testing
