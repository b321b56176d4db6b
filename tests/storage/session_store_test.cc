// The SessionStore contract (storage/session_store.h), checked against every store: the
// in-memory and RocksDB stores (sessions in process memory) and the RADOS store
// (sessions in the pool). The RADOS cases also open a second store on the same
// namespace, as a second server would, and check that it serves the same sessions.
#include "storage/session_store.h"

#include <atomic>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "storage/store.h"
#ifdef MGREG_WITH_RADOS
#include "storage/rados/rados_store.h"
#endif
#include "tests/testing/store_test_util.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

using ::mgreg::testing::Bytes;
using ::mgreg::testing::MakeFile;
using ::mgreg::testing::MakeRequest;
using ::mgreg::testing::RefOf;
using ::mgreg::testing::TempDir;
using ::mgreg::testing::TestFile;
using storage::UploadFileRecord;
using storage::UploadSessionRecord;

struct Backend {
  std::string name;
  // Opens the store of `dir`; a second call with the same dir opens the same store (a
  // second server) where the backend is shared, and nullptr where it is not.
  std::function<std::unique_ptr<Store>(const std::string& dir, bool second)> open;
  bool shared = false;
  std::function<std::string()> unavailable = [] { return std::string(); };
};

int64_t Now() { return absl::ToUnixMicros(absl::Now()); }

class SessionStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (std::string why = GetParam().unavailable(); !why.empty()) GTEST_SKIP() << why;
    store_ = GetParam().open(dir_.Join("store"), false);
    ASSERT_NE(store_, nullptr);
  }
  SessionStore& sessions() { return store_->sessions(); }

  // A session `id` with files a (10 bytes) and b (20 bytes), nothing held.
  static UploadSessionState NewSession(const std::string& id) {
    UploadSessionState s;
    s.session.set_id(id);
    s.session.set_request("opaque request bytes");
    s.session.set_owner("team-a");
    for (const auto& [name, size] :
         {std::pair<std::string, int64_t>{"a", 10}, {"b", 20}}) {
      UploadFileRecord& f = s.files[name];
      f.mutable_file()->set_name(name);
      f.mutable_file()->set_size(size);
      f.mutable_file()->set_sha256(std::string(64, 'a'));
    }
    return s;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_P(SessionStoreTest, CreateLoadAndErrors) {
  const int64_t t0 = Now();
  ASSERT_TRUE(sessions().Create(NewSession("s1"), t0).ok());
  absl::StatusOr<UploadSessionState> s = sessions().Load("s1");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->session.id(), "s1");
  EXPECT_EQ(s->session.request(), "opaque request bytes");
  EXPECT_EQ(s->session.owner(), "team-a");
  EXPECT_EQ(s->session.version(), 1);
  EXPECT_FALSE(s->session.closed());
  EXPECT_EQ(s->session.created_micros(), t0);
  EXPECT_EQ(s->session.last_active_micros(), t0);
  ASSERT_EQ(s->files.size(), 2u);
  EXPECT_EQ(s->files.at("b").file().size(), 20);
  EXPECT_EQ(s->files.at("b").version(), 1);

  EXPECT_EQ(sessions().Create(NewSession("s1"), t0).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(sessions().Create(NewSession(""), t0).code(),
            absl::StatusCode::kInvalidArgument);
  UploadSessionState misfiled = NewSession("s2");
  misfiled.files["c"] = misfiled.files["a"];
  EXPECT_EQ(sessions().Create(misfiled, t0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sessions().Load("s2").status().code(), absl::StatusCode::kNotFound);
  absl::Status missing = sessions().Load("nope").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("begin a new upload"), std::string::npos) << missing;
  EXPECT_EQ(sessions().Staging("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(sessions().Release("nope").ok());
}

TEST_P(SessionStoreTest, FileWritesAreGuardedByVersion) {
  ASSERT_TRUE(sessions().Create(NewSession("s"), Now()).ok());
  UploadFileRecord a = sessions().Load("s")->files.at("a");
  a.set_held(4);
  absl::StatusOr<UploadFileRecord> written = sessions().WriteFile("s", a, "", Now());
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->version(), 2);
  EXPECT_EQ(written->held(), 4);
  // A write decided on the old version loses: the file changed meanwhile.
  a.set_held(8);
  EXPECT_EQ(sessions().WriteFile("s", a, "", Now()).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(sessions().Load("s")->files.at("a").held(), 4);
  // A file learned later is written from version 0, once.
  UploadFileRecord c;
  c.mutable_file()->set_name("c");
  c.mutable_file()->set_size(5);
  ASSERT_TRUE(sessions().WriteFile("s", c, "", Now()).ok());
  EXPECT_EQ(sessions().WriteFile("s", c, "", Now()).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(sessions().Load("s")->files.size(), 3u);
  // Writing a file does not move the others.
  EXPECT_EQ(sessions().Load("s")->files.at("b").version(), 1);
  EXPECT_EQ(sessions().WriteFile("gone", c, "", Now()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(SessionStoreTest, WriterLeaseKeepsOtherWritersOutUntilItRunsOut) {
  ASSERT_TRUE(sessions().Create(NewSession("s"), Now()).ok());
  const int64_t t = Now();
  UploadFileRecord a = sessions().Load("s")->files.at("a");
  a.set_writer("stream-1");
  a.set_writer_until_micros(t + 10'000'000);
  ASSERT_TRUE(sessions().WriteFile("s", a, "stream-1", t).ok());
  a = sessions().Load("s")->files.at("a");
  EXPECT_EQ(a.writer(), "stream-1");
  // Another stream (on any server) is refused while the lease runs...
  UploadFileRecord other = a;
  other.set_writer("stream-2");
  absl::Status refused = sessions().WriteFile("s", other, "stream-2", t + 1).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("being written by another stream"), std::string::npos);
  // ... and so is a caller writing no bytes.
  EXPECT_EQ(sessions().WriteFile("s", other, "", t + 1).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // The holder renews and releases it.
  a.set_held(5);
  absl::StatusOr<UploadFileRecord> renewed =
      sessions().WriteFile("s", a, "stream-1", t + 2);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  // Once the lease ran out (its server died), another stream takes the file over.
  other = *renewed;
  other.set_writer("stream-2");
  other.set_writer_until_micros(t + 20'000'000);
  EXPECT_TRUE(sessions().WriteFile("s", other, "stream-2", t + 10'000'001).ok());
  EXPECT_EQ(sessions().Load("s")->files.at("a").writer(), "stream-2");
  EXPECT_EQ(sessions().Load("s")->files.at("a").held(), 5);
}

TEST_P(SessionStoreTest, ClosedSessionTakesNoMoreWrites) {
  ASSERT_TRUE(sessions().Create(NewSession("s"), Now()).ok());
  UploadSessionRecord r = sessions().Load("s")->session;
  r.set_basename("model.ckpt");
  r.set_owner("someone else");  // not writable: stays as created
  absl::StatusOr<UploadSessionRecord> w = sessions().WriteSession(r, Now());
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->version(), 2);
  EXPECT_EQ(w->basename(), "model.ckpt");
  EXPECT_EQ(sessions().Load("s")->session.owner(), "team-a");
  // Decided on the old version: refused.
  EXPECT_EQ(sessions().WriteSession(r, Now()).status().code(),
            absl::StatusCode::kAborted);
  // Exactly one of two closers wins.
  UploadSessionRecord close = *w;
  close.set_closed(true);
  ASSERT_TRUE(sessions().WriteSession(close, Now()).ok());
  close.set_version(close.version() + 1);
  EXPECT_EQ(sessions().WriteSession(close, Now()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  UploadFileRecord a = sessions().Load("s")->files.at("a");
  a.set_held(1);
  EXPECT_EQ(sessions().WriteFile("s", a, "", Now()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(sessions().Load("s")->session.closed());
  ASSERT_TRUE(sessions().Release("s").ok());
  EXPECT_EQ(sessions().Load("s").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(SessionStoreTest, WritersOfDifferentFilesNeverConflict) {
  UploadSessionState s = NewSession("s");
  for (int i = 0; i < 4; ++i) {
    UploadFileRecord& f = s.files[absl::StrCat("f", i)];
    f.mutable_file()->set_name(absl::StrCat("f", i));
  }
  ASSERT_TRUE(sessions().Create(s, Now()).ok());
  constexpr int kWrites = 20;
  std::atomic<int> failures{0};
  std::vector<std::thread> writers;
  for (int i = 0; i < 4; ++i) {
    writers.emplace_back([&, i] {
      const std::string name = absl::StrCat("f", i);
      UploadFileRecord f = sessions().Load("s")->files.at(name);
      for (int n = 0; n < kWrites; ++n) {
        f.set_held(n + 1);
        absl::StatusOr<UploadFileRecord> w = sessions().WriteFile("s", f, name, Now());
        if (!w.ok()) {
          ++failures;
          return;
        }
        f = *w;
      }
    });
  }
  for (std::thread& t : writers) t.join();
  EXPECT_EQ(failures.load(), 0);
  UploadSessionState after = *sessions().Load("s");
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(after.files.at(absl::StrCat("f", i)).held(), kWrites);
    EXPECT_EQ(after.files.at(absl::StrCat("f", i)).version(), kWrites + 1);
  }
}

// Chunks staged in a session stay held when the area object goes; a commit through
// another object of the same session finds them; Release frees what no commit took.
TEST_P(SessionStoreTest, StagingIsAddressedBySession) {
  ASSERT_TRUE(sessions().Create(NewSession("s"), Now()).ok());
  const TestFile kept = MakeFile("data-00000-of-00001", Bytes(3000, 1));
  const std::string dropped = Bytes(500, 2);
  {
    absl::StatusOr<std::shared_ptr<StagingArea>> area = sessions().Staging("s");
    ASSERT_TRUE(area.ok()) << area.status();
    for (const std::string& c : kept.chunks)
      ASSERT_TRUE((*area)->PutChunk(RefOf(c), c).ok());
    ASSERT_TRUE((*area)->PutChunk(RefOf(dropped), dropped).ok());
  }
  EXPECT_TRUE(*store_->HasChunk(RefOf(dropped)));
  absl::StatusOr<CheckReport> check = store_->Check();
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->ok()) << check->problems.front();
  EXPECT_EQ(check->staged_chunks, static_cast<int64_t>(kept.chunks.size()) + 1);

  TestFile index = MakeFile("index", Bytes(100, 3));
  {
    absl::StatusOr<std::shared_ptr<StagingArea>> area = sessions().Staging("s");
    ASSERT_TRUE(area.ok()) << area.status();
    ASSERT_TRUE((*area)->PutChunk(RefOf(index.chunks[0]), index.chunks[0]).ok());
    absl::StatusOr<CommitResult> c =
        store_->Commit(MakeRequest("m", 1, {kept, index}), area->get());
    ASSERT_TRUE(c.ok()) << c.status();
  }
  ASSERT_TRUE(sessions().Release("s").ok());
  EXPECT_FALSE(*store_->HasChunk(RefOf(dropped)));
  for (const std::string& c : kept.chunks) EXPECT_TRUE(*store_->HasChunk(RefOf(c)));
  check = store_->Check();
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->ok()) << check->problems.front();
  EXPECT_EQ(check->staged_chunks, 0);
  EXPECT_EQ(sessions().Staging("s").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(SessionStoreTest, ListNamesEverySessionInIdOrder) {
  for (const char* id : {"c", "a", "b"})
    ASSERT_TRUE(sessions().Create(NewSession(id), Now()).ok());
  ASSERT_TRUE(sessions().Release("b").ok());
  absl::StatusOr<std::vector<UploadSessionRecord>> list = sessions().List();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id(), "a");
  EXPECT_EQ((*list)[1].id(), "c");
  EXPECT_EQ((*list)[1].owner(), "team-a");
}

// Two stores on one backend, as two servers: a session begun on one is served by the
// other, staged through both, committed through either; dropped by either.
TEST_P(SessionStoreTest, SecondServerServesTheSameSessions) {
  if (!GetParam().shared) GTEST_SKIP() << GetParam().name << " sessions are per process";
  std::unique_ptr<Store> other = GetParam().open(dir_.Join("store"), true);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(sessions().Create(NewSession("s"), Now()).ok());
  absl::StatusOr<UploadSessionState> seen = other->sessions().Load("s");
  ASSERT_TRUE(seen.ok()) << seen.status();
  UploadFileRecord a = seen->files.at("a");
  a.set_held(3);
  ASSERT_TRUE(other->sessions().WriteFile("s", a, "w", Now()).ok());
  EXPECT_EQ(sessions().Load("s")->files.at("a").held(), 3);

  const TestFile on_a = MakeFile("data-00000-of-00002", Bytes(2000, 4));
  const TestFile on_b = MakeFile("data-00001-of-00002", Bytes(2000, 5));
  const std::string abandoned = Bytes(700, 6);
  auto put = [](Store& s, const std::vector<std::string>& chunks) {
    absl::StatusOr<std::shared_ptr<StagingArea>> area = s.sessions().Staging("s");
    ASSERT_TRUE(area.ok()) << area.status();
    for (const std::string& c : chunks) ASSERT_TRUE((*area)->PutChunk(RefOf(c), c).ok());
  };
  put(*store_, on_a.chunks);
  put(*other, on_b.chunks);
  put(*other, {abandoned});
  {
    absl::StatusOr<std::shared_ptr<StagingArea>> area = sessions().Staging("s");
    ASSERT_TRUE(area.ok());
    absl::StatusOr<CommitResult> c =
        store_->Commit(MakeRequest("m", 7, {on_a, on_b}), area->get());
    ASSERT_TRUE(c.ok()) << c.status();
  }
  ASSERT_TRUE(other->sessions().Release("s").ok());
  EXPECT_EQ(sessions().Load("s").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(*store_->HasChunk(RefOf(abandoned)));
  absl::StatusOr<CheckReport> check = store_->Check();
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->ok()) << check->problems.front();
  EXPECT_EQ(check->staged_chunks, 0);
  EXPECT_EQ(check->checkpoints, 1);
}

#ifdef MGREG_WITH_RADOS
RadosStoreOptions RadosOptions(const std::string& dir) {
  RadosStoreOptions o;
  o.ceph_conf = std::getenv("MGREG_TEST_CEPH_CONF");
  o.pool = "mgreg";
  o.rados_namespace = "ss" + dir;
  o.gc_period = absl::Milliseconds(200);
  o.session_expiry = absl::Seconds(2);
  return o;
}
#endif

INSTANTIATE_TEST_SUITE_P(
    Backends, SessionStoreTest,
    ::testing::Values(
        Backend{"memory",
                [](const std::string&, bool second) -> std::unique_ptr<Store> {
                  if (second) return nullptr;
                  return NewMemoryStore();
                }},
        Backend{"rocksdb",
                [](const std::string& dir, bool second) -> std::unique_ptr<Store> {
                  if (second) return nullptr;
                  RocksDbStoreOptions o;
                  o.path = dir;
                  o.sync_commits = false;
                  auto s = OpenRocksDbStore(o);
                  EXPECT_TRUE(s.ok()) << s.status();
                  return s.ok() ? std::move(*s) : nullptr;
                }}
#ifdef MGREG_WITH_RADOS
        ,
        Backend{"rados",
                [](const std::string& dir, bool) -> std::unique_ptr<Store> {
                  auto s = OpenRadosStore(RadosOptions(dir));
                  EXPECT_TRUE(s.ok()) << s.status();
                  return s.ok() ? std::move(*s) : nullptr;
                },
                /*shared=*/true,
                [] {
                  return std::getenv("MGREG_TEST_CEPH_CONF") != nullptr
                             ? std::string()
                             : std::string(
                                   "RADOS test SKIPPED: MGREG_TEST_CEPH_CONF is not "
                                   "set (scripts/test.sh starts a cluster; or "
                                   "scripts/ceph-dev.sh)");
                }}
#endif
        ),
    [](const ::testing::TestParamInfo<Backend>& info) { return info.param.name; });

#ifdef MGREG_WITH_RADOS
// A session nobody writes for session_expiry is dropped by the GC of any store, its
// staged chunks freed; one written meanwhile stays. The bound is measured.
TEST(RadosSessionExpiryTest, AbandonedSessionsChunksAreFreed) {
  if (std::getenv("MGREG_TEST_CEPH_CONF") == nullptr) {
    GTEST_SKIP() << "RADOS test SKIPPED: MGREG_TEST_CEPH_CONF is not set";
  }
  TempDir dir;
  RadosStoreOptions o = RadosOptions(dir.Join("expiry"));
  absl::StatusOr<std::unique_ptr<Store>> store = OpenRadosStore(o);
  ASSERT_TRUE(store.ok()) << store.status();
  SessionStore& sessions = (*store)->sessions();
  UploadSessionState s;
  s.session.set_id("abandoned");
  ASSERT_TRUE(sessions.Create(s, Now()).ok());
  s.session.set_id("alive");
  ASSERT_TRUE(sessions.Create(s, Now()).ok());
  const std::string chunk = Bytes(900, 7), alive_chunk = Bytes(900, 8);
  (*sessions.Staging("abandoned"))->PutChunk(RefOf(chunk), chunk).IgnoreError();
  (*sessions.Staging("alive"))->PutChunk(RefOf(alive_chunk), alive_chunk).IgnoreError();
  ASSERT_TRUE(*(*store)->HasChunk(RefOf(chunk)));
  const absl::Time start = absl::Now();
  UploadFileRecord f;
  f.mutable_file()->set_name("x");
  while (*(*store)->HasChunk(RefOf(chunk)) && absl::Now() - start < absl::Seconds(30)) {
    // Keeps "alive" alive: a write every 200 ms.
    absl::StatusOr<UploadFileRecord> w = sessions.WriteFile("alive", f, "", Now());
    ASSERT_TRUE(w.ok()) << w.status();
    f = *w;
    absl::SleepFor(absl::Milliseconds(200));
  }
  const absl::Duration took = absl::Now() - start;
  EXPECT_FALSE(*(*store)->HasChunk(RefOf(chunk)));
  EXPECT_EQ(sessions.Load("abandoned").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(sessions.Load("alive").ok());
  EXPECT_TRUE(*(*store)->HasChunk(RefOf(alive_chunk)));
  std::cout << "abandoned session's chunk freed " << absl::FormatDuration(took)
            << " after its last write (session_expiry 2s, gc_period 200ms)\n";
  absl::StatusOr<CheckReport> check = (*store)->Check();
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->ok()) << check->problems.front();
}
#endif

}  // namespace
}  // namespace mgreg
