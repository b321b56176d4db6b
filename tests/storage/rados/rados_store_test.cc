// The RADOS store beyond the conformance suite: bad configuration (missing pool, a
// cluster that is down, another program's objects), several stores (as several
// mgreg-server replicas) on one namespace, and writers that stop mid-transaction.
#include "storage/rados/rados_store.h"

#include <atomic>
#include <rados/librados.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/rados_test_util.h"
#include "tests/testing/store_test_util.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

using ::testing::HasSubstr;

void ExpectClean(Store& store) {
  auto report = store.Check();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok()) << ::testing::PrintToString(report->problems);
}

TEST(RadosStoreTest, MissingPoolIsFailedPreconditionNamingPoolAndConf) {
  MGREG_REQUIRE_CEPH();
  RadosStoreOptions o = TestStoreOptions(FreshTestNamespace("rs"));
  o.pool = "no-such-pool";
  auto s = OpenRadosStore(o);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_THAT(s.status().message(), HasSubstr("'no-such-pool' does not exist"));
  EXPECT_THAT(s.status().message(), HasSubstr(TestCephConf()));
  EXPECT_THAT(s.status().message(), HasSubstr("ceph osd pool create no-such-pool"));
}

TEST(RadosStoreTest, ClusterDownIsUnavailableNamingConfAndPool) {
  TempDir tmp;
  // A monitor address nothing listens on (a port just bound and closed).
  const std::string conf = tmp.Join("ceph.conf");
  WriteFileOrDie(conf,
                 "[global]\nmon_host = 127.0.0.1:9\nauth_cluster_required = none\n"
                 "auth_service_required = none\nauth_client_required = none\n");
  RadosStoreOptions o;
  o.ceph_conf = conf;
  o.pool = "mgreg";
  o.timeout_seconds = 2;
  auto s = OpenRadosStore(o);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kUnavailable) << s.status();
  EXPECT_THAT(s.status().message(), HasSubstr(conf));
  EXPECT_THAT(s.status().message(), HasSubstr("'mgreg'"));
}

TEST(RadosStoreTest, UnreadableConfIsFailedPrecondition) {
  RadosStoreOptions o;
  o.ceph_conf = "/nonexistent/ceph.conf";
  auto s = OpenRadosStore(o);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_THAT(s.status().message(), HasSubstr("/nonexistent/ceph.conf"));
  o.ceph_conf = "";
  EXPECT_EQ(OpenRadosStore(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RadosStoreTest, NamespaceHoldingAnotherProgramsObjectsIsRefusedAndLeftAlone) {
  MGREG_REQUIRE_CEPH();
  const std::string ns = FreshTestNamespace("rs");
  librados::Rados rados;
  ASSERT_TRUE(ConnectToCluster(TestCephConf(), &rados).ok());
  librados::IoCtx io;
  ASSERT_EQ(rados.ioctx_create(kTestCephPool, io), 0);
  io.set_namespace(ns);
  librados::bufferlist bl;
  bl.append("someone else's");
  ASSERT_EQ(io.write_full("their-object", bl), 0);
  auto s = OpenRadosStore(TestStoreOptions(ns));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_THAT(s.status().message(), HasSubstr("another program"));
  uint64_t size = 0;
  time_t mtime = 0;
  EXPECT_EQ(io.stat("their-object", &size, &mtime), 0);
  EXPECT_EQ(io.stat("catalog", &size, &mtime), -ENOENT) << "the store wrote anyway";

  // An object named like the catalog without mgreg's format marker.
  const std::string ns2 = FreshTestNamespace("rs");
  io.set_namespace(ns2);
  ASSERT_EQ(io.write_full("catalog", bl), 0);
  s = OpenRadosStore(TestStoreOptions(ns2));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_THAT(s.status().message(), HasSubstr("format marker"));
}

TEST(RadosStoreTest, ReopenedStoreServesWhatWasCommitted) {
  MGREG_REQUIRE_CEPH();
  const std::string ns = FreshTestNamespace("rs");
  {
    auto a = OpenTestStoreOrFail(TestStoreOptions(ns));
    ASSERT_NE(a, nullptr);
    ASSERT_TRUE(Push(*a, "resnet", 7, {{"index", "i7"}, {"data", Bytes(5000, 7)}}).ok());
  }
  auto b = OpenTestStoreOrFail(TestStoreOptions(ns));
  ASSERT_NE(b, nullptr);
  auto latest = b->GetLatest("resnet");
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->step(), 7);
  EXPECT_EQ(latest->revision(), 1);
  ExpectClean(*b);
}

TEST(RadosStoreTest, TwoStoresOnOneNamespaceServeEachOthersStepsAndEvents) {
  MGREG_REQUIRE_CEPH();
  const std::string ns = FreshTestNamespace("rs");
  auto a = OpenTestStoreOrFail(TestStoreOptions(ns));
  auto b = OpenTestStoreOrFail(TestStoreOptions(ns));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  absl::Mutex mu;
  std::vector<int64_t> heard_a, heard_b;
  a->SetEventListener([&](const storage::Event& e) {
    absl::MutexLock l(&mu);
    heard_a.push_back(e.revision());
  });
  b->SetEventListener([&](const storage::Event& e) {
    absl::MutexLock l(&mu);
    heard_b.push_back(e.revision());
  });

  auto pushed = Push(*a, "m", 1, {{"index", "one"}, {"data", Bytes(3000, 1)}});
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  auto on_b = b->GetLatest("m");
  ASSERT_TRUE(on_b.ok()) << on_b.status();
  EXPECT_EQ(on_b->step(), 1);
  auto blob = b->GetBlob(pushed->record.files(0).sha256());
  ASSERT_TRUE(blob.ok()) << blob.status();
  {
    // B hears A's commit without writing itself (A notifies the catalog's watchers).
    absl::MutexLock l(&mu);
    auto heard = [&] { return !heard_b.empty(); };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&heard), absl::Seconds(5)))
        << "B's listener did not hear A's commit";
    EXPECT_EQ(heard_b, std::vector<int64_t>{1});
  }

  // Concurrent writers through both stores, on one model and on their own.
  constexpr int kSteps = 15;
  std::atomic<int> failures{0};
  auto writer = [&](Store* s, const std::string& model, int64_t base) {
    for (int i = 0; i < kSteps; ++i) {
      // No retry: writers that lose the race for the catalog take turns.
      absl::StatusOr<CommitResult> r = Push(
          *s, model, base + i,
          {{"index", absl::StrCat(model, base + i)}, {"data", Bytes(2500, base + i)}});
      if (!r.ok()) {
        ADD_FAILURE() << r.status();
        ++failures;
      }
    }
  };
  std::thread t1(writer, a.get(), "shared", 100);
  std::thread t2(writer, b.get(), "shared", 200);
  std::thread t3(writer, b.get(), "own-b", 0);
  t1.join();
  t2.join();
  t3.join();
  ASSERT_EQ(failures.load(), 0);
  // One more write through each; each has caught up with the other's events by then.
  ASSERT_TRUE(a->SetAlias("m", "prod", 1).ok());
  ASSERT_TRUE(b->SetAlias("m", "canary", 1).ok());

  const int64_t last = 1 + 3 * kSteps + 2;
  for (Store* s : {a.get(), b.get()}) {
    auto stats = s->GetStats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->revision, last);
    EXPECT_EQ(stats->checkpoints, 1 + 3 * kSteps);
    auto steps = s->ListCheckpoints("shared", std::nullopt, 100);
    ASSERT_TRUE(steps.ok());
    EXPECT_EQ(steps->size(), 2u * kSteps);
  }
  auto events = a->ReadEvents(0, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->events.size(), static_cast<size_t>(last));
  for (int64_t i = 0; i < last; ++i) EXPECT_EQ(events->events[i].revision(), i + 1);
  {
    absl::MutexLock l(&mu);
    auto all_heard = [&] {
      return heard_a.size() == static_cast<size_t>(last) &&
             heard_b.size() == static_cast<size_t>(last);
    };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all_heard), absl::Seconds(5)))
        << "A heard " << heard_a.size() << ", B " << heard_b.size() << " of " << last;
    // Each store's listener heard every event once, in revision order: its own and the
    // other's.
    for (const auto* heard : {&heard_a, &heard_b}) {
      for (size_t i = 0; i < heard->size(); ++i) {
        EXPECT_EQ((*heard)[i], static_cast<int64_t>(i) + 1);
      }
    }
  }
  ExpectClean(*a);
}

// GetLatest and GetModel are served from each store's memory; a write through another
// store returns only once every live store dropped what it cached (its tailer acks the
// writer's notify after catching up), so the next read anywhere sees it: a step, a pin
// and a retention policy (writes without an event notify too), a model that did not
// exist when it was asked for.
TEST(RadosStoreTest, CachedReadsOfEveryStoreSeeAWriteAsSoonAsItReturns) {
  MGREG_REQUIRE_CEPH();
  const std::string ns = FreshTestNamespace("rs");
  auto a = OpenTestStoreOrFail(TestStoreOptions(ns));
  auto b = OpenTestStoreOrFail(TestStoreOptions(ns));
  ASSERT_TRUE(a && b);
  std::atomic<int64_t> heard{0};
  b->SetEventListener([&](const storage::Event& e) { heard = e.revision(); });
  EXPECT_EQ(b->GetLatest("m").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(b->GetModel("m").status().code(), absl::StatusCode::kNotFound);
  for (int64_t step = 1; step <= 20; ++step) {
    ASSERT_TRUE(Push(*a, "m", step, {{"f", Bytes(500, step)}}).ok());
    auto latest = b->GetLatest("m");
    ASSERT_TRUE(latest.ok()) << latest.status();
    EXPECT_EQ(latest->step(), step);
    EXPECT_EQ(heard.load(), step);  // B's listener heard it before A's commit returned
  }
  ASSERT_TRUE(a->SetPinned("m", 20, true).ok());
  auto latest = b->GetLatest("m");
  ASSERT_TRUE(latest.ok());
  EXPECT_TRUE(latest->pinned());
  storage::RetentionPolicy policy;
  policy.set_max_to_keep(50);
  ASSERT_TRUE(a->SetRetention("m", policy).ok());
  auto model = b->GetModel("m");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->retention().max_to_keep(), 50);
  EXPECT_EQ(model->latest_step(), 20);
  // And back the other way, through the deleting store's own cache.
  ASSERT_TRUE(b->DeleteCheckpoint("m", 19).ok());
  ASSERT_TRUE(b->SetPinned("m", 20, false).ok());
  ASSERT_TRUE(b->DeleteCheckpoint("m", 20).ok());
  for (Store* s : {a.get(), b.get()}) {
    auto l = s->GetLatest("m");
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(l->step(), 18);
    auto m = s->GetModel("m");
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->checkpoint_count(), 18);
  }
  b->SetEventListener(nullptr);
  ExpectClean(*a);
}

// Three stores (three servers) whose writers commit back to back on one model and on
// their own: writers that lose the race for the catalog take turns, so every commit
// goes through without the caller retrying (no ABORTED "registry busy").
TEST(RadosStoreTest, ThreeStoresContendingEveryWritersCommitsSucceed) {
  MGREG_REQUIRE_CEPH();
  const std::string ns = FreshTestNamespace("rs");
  std::vector<std::unique_ptr<Store>> stores;
  for (int i = 0; i < 3; ++i) {
    stores.push_back(OpenTestStoreOrFail(TestStoreOptions(ns)));
    ASSERT_NE(stores.back(), nullptr);
  }
  constexpr int kSteps = 12;
  std::atomic<int> failures{0};
  std::vector<std::thread> writers;
  for (int i = 0; i < 3; ++i) {
    for (const std::string& model : {std::string("shared"), absl::StrCat("own-", i)}) {
      writers.emplace_back([&, i, model] {
        for (int k = 0; k < kSteps; ++k) {
          const int64_t step = 1000 * i + k;
          auto r =
              Push(*stores[i], model, step,
                   {{"index", absl::StrCat(model, step)}, {"data", Bytes(1500, step)}});
          if (!r.ok()) {
            ++failures;
            ADD_FAILURE() << "store " << i << " " << model << " step " << step << ": "
                          << r.status();
          }
        }
      });
    }
  }
  for (std::thread& t : writers) t.join();
  EXPECT_EQ(failures.load(), 0);
  const int64_t total = 3 * 2 * kSteps;
  for (const auto& s : stores) {
    auto stats = s->GetStats();
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_EQ(stats->checkpoints, total);
    EXPECT_EQ(stats->revision, total);
  }
  auto events = stores[0]->ReadEvents(0, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->events.size(), static_cast<size_t>(total));
  for (int64_t i = 0; i < total; ++i) EXPECT_EQ(events->events[i].revision(), i + 1);
  ExpectClean(*stores[1]);
}

// A writer that stops right after deciding a transaction, or after applying it to the
// objects but before publishing it: readers never see half a step, and the next write
// through another store finishes it (the step is there once, revisions consecutive).
class StoppedWriterTest : public ::testing::TestWithParam<int> {};

TEST_P(StoppedWriterTest, NextWriterRollsTheTransactionForward) {
  MGREG_REQUIRE_CEPH();
  const std::string ns = FreshTestNamespace("rs");
  auto healthy = OpenTestStoreOrFail(TestStoreOptions(ns));
  ASSERT_NE(healthy, nullptr);
  ASSERT_TRUE(Push(*healthy, "m", 1, {{"index", "a"}, {"data", Bytes(4000, 1)}}).ok());
  {
    RadosStoreOptions o = TestStoreOptions(ns);
    o.test_stop_after = GetParam();
    auto dying = OpenTestStoreOrFail(o);
    ASSERT_NE(dying, nullptr);
    auto r = Push(*dying, "m", 2, {{"index", "b"}, {"data", Bytes(4000, 2)}});
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  }  // its staging area is gone; its hold stays on the chunks the commit releases
  // Not published: the latest is still step 1 and no event names step 2.
  auto latest = healthy->GetLatest("m");
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->step(), 1);
  // The next write rolls step 2 forward, then commits step 3.
  auto three = Push(*healthy, "m", 3, {{"index", "c"}, {"data", Bytes(4000, 3)}});
  ASSERT_TRUE(three.ok()) << three.status();
  EXPECT_EQ(three->record.revision(), 3);
  auto two = healthy->GetCheckpoint("m", 2);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->revision(), 2);
  auto events = healthy->ReadEvents(0, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->events.size(), 3u);
  EXPECT_EQ(events->events[1].step(), 2);
  auto stats = healthy->GetStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->checkpoints, 3);
  ExpectClean(*healthy);
  // Re-pushing the rolled-forward step is idempotent.
  auto again = Push(*healthy, "m", 2, {{"index", "b"}, {"data", Bytes(4000, 2)}});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->unchanged);
}

INSTANTIATE_TEST_SUITE_P(StopPoints, StoppedWriterTest, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == 1 ? std::string("AfterDecision")
                                                  : std::string("BeforePublish");
                         });

}  // namespace
}  // namespace mgreg::testing
