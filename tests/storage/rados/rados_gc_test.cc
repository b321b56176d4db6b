// The RADOS store's garbage collection: a server that dies mid-upload (a child process,
// SIGKILLed) leaves holds on the chunks it staged; once it has been missing from the
// catalog's watchers for dead_after, the GC of a live store ends them and frees what
// nothing else holds or references, while live stores' holds and committed chunks stay.
// Blob tombstones are swept after tombstone_ttl.
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/rados/rados_store.h"
#include "tests/testing/rados_test_util.h"
#include "tests/testing/store_test_util.h"

extern char** environ;

namespace mgreg::testing {
namespace {

constexpr char kChildEnv[] = "MGREG_RADOS_GC_TEST_CHILD_NAMESPACE";

// Small bounds, so that a dead server's holds end within seconds.
RadosStoreOptions ShortOptions(const std::string& ns) {
  RadosStoreOptions o = TestStoreOptions(ns);
  o.watch_timeout = absl::Seconds(2);
  o.dead_after = absl::Seconds(1);
  o.gc_period = absl::Milliseconds(250);
  return o;
}

// The chunks of the test, by who stages them.
std::string Committed() { return Bytes(1000, 1); }  // committed by the parent first
std::string Shared() { return Bytes(1000, 2); }     // staged by the child and the parent
std::string ChildOnly(int i) { return Bytes(1000, 10 + i); }  // staged by the child only
std::string ParentOnly() { return Bytes(1000, 3); }  // staged by a live store only

// Raw view of the namespace through librados.
class Objects {
 public:
  explicit Objects(const std::string& ns) {
    EXPECT_TRUE(ConnectToCluster(TestCephConf(), &rados_).ok());
    EXPECT_EQ(rados_.ioctx_create(kTestCephPool, io_), 0);
    io_.set_namespace(ns);
  }
  ~Objects() {
    io_.close();
    rados_.shutdown();
  }
  // The xattrs of chunk `bytes`; false if the chunk object does not exist.
  bool Chunk(const std::string& bytes,
             std::map<std::string, std::string>* attrs = nullptr) {
    std::map<std::string, librados::bufferlist> raw;
    int r = io_.getxattrs("c." + Sha256Hex(bytes), raw);
    EXPECT_TRUE(r >= 0 || r == -ENOENT) << r;
    if (attrs != nullptr) {
      attrs->clear();
      for (auto& [k, v] : raw) (*attrs)[k] = v.to_str();
    }
    return r >= 0;
  }
  std::vector<std::string> Holds(const std::string& bytes) {
    std::map<std::string, std::string> attrs;
    std::vector<std::string> out;
    if (!Chunk(bytes, &attrs)) return out;
    for (const auto& [k, v] : attrs) {
      if (k.rfind("h.", 0) == 0) out.push_back(k);
    }
    return out;
  }
  bool Exists(const std::string& oid) {
    uint64_t size = 0;
    time_t mtime = 0;
    return io_.stat(oid, &size, &mtime) == 0;
  }
  std::vector<std::string> OmapKeys(const std::string& oid) {
    std::set<std::string> keys;
    io_.omap_get_keys2(oid, "", 1000, &keys, nullptr);
    return {keys.begin(), keys.end()};
  }

 private:
  librados::Rados rados_;
  librados::IoCtx io_;
};

// What the child process runs: stage chunks, say so, and wait to be killed.
TEST(RadosGcChild, DISABLED_StageChunksAndWaitToBeKilled) {
  const char* ns = std::getenv(kChildEnv);
  ASSERT_NE(ns, nullptr) << "run by RadosGcTest only";
  auto store = OpenRadosStore(ShortOptions(ns));
  ASSERT_TRUE(store.ok()) << store.status();
  auto area = (*store)->NewStagingArea();
  ASSERT_TRUE(area->HoldExistingChunk(RefOf(Committed())).ok());
  ASSERT_TRUE(area->PutChunk(RefOf(Shared()), Shared()).ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(area->PutChunk(RefOf(ChildOnly(i)), ChildOnly(i)).ok());
  }
  std::printf("\nstaged\n");
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::seconds(60));  // killed long before
  FAIL() << "not killed";
}

// Starts this test binary as the child above; returns its pid and its stdout.
pid_t StartChild(const std::string& ns, int* out_fd) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::vector<std::string> env_strings = {absl::StrCat(kChildEnv, "=", ns)};
  for (char** e = environ; *e != nullptr; ++e) env_strings.push_back(*e);
  std::vector<char*> env;
  for (std::string& s : env_strings) env.push_back(s.data());
  env.push_back(nullptr);
  std::string exe = "/proc/self/exe", all = "--gtest_also_run_disabled_tests",
              filter =
                  "--gtest_filter=RadosGcChild.DISABLED_StageChunksAndWaitToBeKilled";
  char* argv[] = {exe.data(), all.data(), filter.data(), nullptr};
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv, env.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  *out_fd = fds[0];
  return pid;
}

// Reads `fd` until a line `want` arrives (true) or `timeout` passes / the pipe closes.
bool AwaitLine(int fd, const std::string& want, absl::Duration timeout,
               std::string* all) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) return false;
    all->append(buf, static_cast<size_t>(n));
    if (all->find("\n" + want + "\n") != std::string::npos) return true;
  }
  return false;
}

TEST(RadosGcTest, DeadServersHoldsEndAfterTheBoundAndLiveHoldsStay) {
  MGREG_REQUIRE_CEPH();
  const std::string ns = FreshTestNamespace("gc");
  auto live = OpenRadosStore(ShortOptions(ns));
  ASSERT_TRUE(live.ok()) << live.status();
  // A second live store that stages a chunk and then stays idle: its hold must stay.
  auto idle = OpenRadosStore(ShortOptions(ns));
  ASSERT_TRUE(idle.ok()) << idle.status();
  auto idle_area = (*idle)->NewStagingArea();
  ASSERT_TRUE(idle_area->PutChunk(RefOf(ParentOnly()), ParentOnly()).ok());
  ASSERT_TRUE(Push(**live, "m", 1, {{"data", Committed()}}).ok());

  int out = -1;
  const pid_t child = StartChild(ns, &out);
  ASSERT_GT(child, 0);
  std::string said;
  const bool staged = AwaitLine(out, "staged", absl::Seconds(60), &said);
  if (!staged) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    FAIL() << "the child did not stage its chunks; it said:\n" << said;
  }
  // The live store stages the shared chunk too.
  auto area = (*live)->NewStagingArea();
  ASSERT_TRUE(area->PutChunk(RefOf(Shared()), Shared()).ok());

  Objects objects(ns);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(objects.Holds(ChildOnly(i)).size(), 1u) << "the child's hold is not there";
  }
  ASSERT_EQ(objects.Holds(Shared()).size(), 2u);
  ASSERT_EQ(objects.Holds(Committed()).size(), 1u);
  const std::string child_hold = objects.Holds(ChildOnly(0))[0];
  ASSERT_EQ(objects.OmapKeys("replicas").size(), 3u);

  ASSERT_EQ(::kill(child, SIGKILL), 0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  ::close(out);
  const absl::Time killed = absl::Now();
  // The bound: the OSD drops the dead watcher after watch_timeout (2 s); the GC ends its
  // holds once it has been missing for dead_after (1 s), looking every gc_period
  // (0.25 s): about 3.5 s. Allow for a busy machine.
  const absl::Duration bound = absl::Seconds(15);
  bool freed = false;
  while (absl::Now() - killed < bound) {
    if (!objects.Chunk(ChildOnly(0)) && !objects.Chunk(ChildOnly(1)) &&
        !objects.Chunk(ChildOnly(2))) {
      freed = true;
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  const absl::Duration took = absl::Now() - killed;
  ASSERT_TRUE(freed) << "the dead server's chunks are still there after " << bound;
  RecordProperty("dead_holds_freed_after_ms",
                 std::to_string(absl::ToInt64Milliseconds(took)));
  // Not before the watch expired: the GC does not free a hold while its server watches.
  EXPECT_GE(took, absl::Seconds(2)) << "freed before the watch could expire";

  // Live holds and committed chunks stay; only the dead server's holds ended.
  EXPECT_THAT(objects.Holds(Shared()), ::testing::Not(::testing::Contains(child_hold)));
  EXPECT_EQ(objects.Holds(Shared()).size(), 1u);
  EXPECT_TRUE(objects.Chunk(Committed()));
  EXPECT_TRUE(objects.Holds(Committed()).empty());
  EXPECT_EQ(objects.Holds(ParentOnly()).size(), 1u);
  // The dead server is forgotten: no holds object, no entry in `replicas`.
  const std::string instance = child_hold.substr(2, child_hold.rfind('.') - 2);
  EXPECT_FALSE(objects.Exists("holds." + instance));
  EXPECT_EQ(objects.OmapKeys("replicas").size(), 2u);

  // The live uploads still commit, and the store checks clean.
  CommitRequest req = MakeRequest("m", 2, {MakeFile("data", Shared())});
  auto committed = (*live)->Commit(req, area.get());
  ASSERT_TRUE(committed.ok()) << committed.status();
  ASSERT_TRUE(idle_area->PutChunk(RefOf(ParentOnly()), ParentOnly()).ok());
  auto report = (*live)->Check();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok()) << ::testing::PrintToString(report->problems);
}

// A chunk object left with no reference and no hold (a write that failed half-way) is
// freed by the pool scan once older than dead_after; referenced and held chunks stay.
TEST(RadosGcTest, OrphanChunksAreFreedByThePoolScan) {
  MGREG_REQUIRE_CEPH();
  const std::string ns = FreshTestNamespace("gc");
  RadosStoreOptions o = ShortOptions(ns);
  o.orphan_scan_period = absl::Milliseconds(250);
  auto store = OpenRadosStore(o);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string kept = Bytes(2000, 20), held = Bytes(2000, 21),
                    orphan = Bytes(2000, 22);
  ASSERT_TRUE(Push(**store, "m", 1, {{"data", kept}}, false, /*chunk_size=*/4096).ok());
  auto area = (*store)->NewStagingArea();
  ASSERT_TRUE(area->PutChunk(RefOf(held), held).ok());
  {
    // What a half-failed write leaves: the bytes, refs 0, no hold.
    librados::Rados rados;
    librados::IoCtx io;
    ASSERT_TRUE(ConnectToCluster(TestCephConf(), &rados).ok());
    ASSERT_EQ(rados.ioctx_create(kTestCephPool, io), 0);
    io.set_namespace(ns);
    librados::ObjectWriteOperation op;
    librados::bufferlist data, zero, size;
    data.append(orphan);
    zero.append("0");
    size.append(std::to_string(orphan.size()));
    op.write_full(data);
    op.setxattr("refs", zero);
    op.setxattr("lsn", zero);
    op.setxattr("size", size);
    ASSERT_EQ(io.operate("c." + Sha256Hex(orphan), &op), 0);
    io.close();
    rados.shutdown();
  }
  Objects objects(ns);
  const absl::Time start = absl::Now();
  while (objects.Chunk(orphan) && absl::Now() - start < absl::Seconds(20)) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_FALSE(objects.Chunk(orphan)) << "the orphan chunk is still there";
  std::printf(
      "orphan chunk freed %s after it was written (dead_after 1s, scan every "
      "250ms)\n",
      absl::FormatDuration(absl::Now() - start).c_str());
  EXPECT_TRUE(objects.Chunk(kept));
  EXPECT_TRUE(objects.Chunk(held));
  auto report = (*store)->Check();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok()) << ::testing::PrintToString(report->problems);
}

TEST(RadosGcTest, BlobTombstonesAreSweptAfterTheirTtl) {
  MGREG_REQUIRE_CEPH();
  const std::string ns = FreshTestNamespace("gc");
  RadosStoreOptions o = ShortOptions(ns);
  o.tombstone_ttl = absl::Seconds(1);
  auto store = OpenRadosStore(o);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string gone = Bytes(3000, 5), back = Bytes(3000, 6);
  ASSERT_TRUE(Push(**store, "m", 1, {{"data", gone}}).ok());
  ASSERT_TRUE(Push(**store, "m", 2, {{"data", back}}).ok());
  ASSERT_TRUE((*store)->DeleteCheckpoint("m", 1).ok());
  ASSERT_TRUE((*store)->DeleteCheckpoint("m", 2).ok());
  // Step 2's blob comes back right away: its tombstone becomes a live blob again.
  ASSERT_TRUE(Push(**store, "m", 3, {{"data", back}}).ok());
  Objects objects(ns);
  const std::string gone_blob = "b." + Sha256Hex(gone),
                    back_blob = "b." + Sha256Hex(back);
  ASSERT_TRUE(objects.Exists(gone_blob)) << "no tombstone was left";
  bool swept = false;
  for (absl::Time start = absl::Now(); absl::Now() - start < absl::Seconds(15);) {
    if (!objects.Exists(gone_blob)) {
      swept = true;
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(swept) << "the tombstone of a removed blob is still there";
  EXPECT_TRUE(objects.Exists(back_blob));
  auto blob = (*store)->GetBlob(Sha256Hex(back));
  EXPECT_TRUE(blob.ok()) << blob.status();
  // The catalog forgets swept tombstones.
  for (absl::Time start = absl::Now(); absl::Now() - start < absl::Seconds(15);) {
    bool any = false;
    for (const std::string& key : objects.OmapKeys("catalog"))
      any |= key.rfind("z.", 0) == 0;
    if (!any) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  for (const std::string& key : objects.OmapKeys("catalog")) {
    EXPECT_NE(key.rfind("z.", 0), 0u) << key;
  }
  auto report = (*store)->Check();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok()) << ::testing::PrintToString(report->problems);
}

}  // namespace
}  // namespace mgreg::testing
