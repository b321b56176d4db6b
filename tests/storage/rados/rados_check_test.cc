// `admin check` on the RADOS store while other processes write: Check freezes the
// registry's writers (every store on the namespace) while it reads the metadata, so it
// reports one consistent view; a checker that dies while frozen holds writers up for at
// most its watch timeout; a freeze longer than a writer's freeze_wait makes the writer
// answer UNAVAILABLE naming the freeze.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/rados/rados_store.h"
#include "tests/testing/rados_test_util.h"
#include "tests/testing/store_test_util.h"

extern char** environ;

namespace mgreg::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kChildEnv[] = "MGREG_RADOS_CHECK_TEST_CHILD_NAMESPACE";

// A checker's death is noticed within seconds.
RadosStoreOptions Options(const std::string& ns) {
  RadosStoreOptions o = TestStoreOptions(ns);
  o.watch_timeout = absl::Seconds(2);
  return o;
}

// A writer on its own store (another server): commits step after step of one model
// and deletes the step before the previous one, so models, steps, blobs, refcounts,
// chunks and events all move while a check reads. Writers with the same `seed` push the
// same files (dedup across models): one's Push may find a blob stored that the other's
// delete removes before the commit, which is refused (FAILED_PRECONDITION, as for a
// client) and pushed again.
class Writer {
 public:
  Writer(Store* store, std::string model, uint64_t seed)
      : store_(store), model_(std::move(model)), seed_(seed) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Writer() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int commits() const { return commits_.load(); }
  int refused() const { return refused_.load(); }
  const std::string& error() const { return error_; }

 private:
  absl::Status PushStep(int64_t step) {
    absl::Status s;
    for (int attempt = 0; attempt < 5; ++attempt) {
      s = Push(*store_, model_, step,
               {{"a.index", Bytes(300, seed_ + step)},
                {"a.data", Bytes(5000, seed_)},  // shared by every step
                {"b.data", Bytes(3000, seed_ + 500 + step)}})
              .status();
      if (s.code() != absl::StatusCode::kFailedPrecondition) return s;
      ++refused_;
    }
    return s;
  }
  void Run() {
    for (int64_t step = 1; !stop_; ++step) {
      absl::Status r = PushStep(step);
      if (!r.ok()) {
        error_ = r.ToString();
        return;
      }
      ++commits_;
      if (step > 2) {
        auto d = store_->DeleteCheckpoint(model_, step - 2);
        if (!d.ok()) {
          error_ = d.status().ToString();
          return;
        }
      }
    }
  }

  Store* const store_;
  const std::string model_;
  const uint64_t seed_;
  std::atomic<bool> stop_{false};
  std::atomic<int> commits_{0}, refused_{0};
  std::string error_;
  std::thread thread_;
};

TEST(RadosCheckTest, CheckWhileOtherServersCommitSeesAConsistentViewAndReportsClean) {
  MGREG_REQUIRE_CEPH();
  const std::string ns = FreshTestNamespace("ck");
  auto checker = OpenTestStoreOrFail(Options(ns));
  auto w1 = OpenTestStoreOrFail(Options(ns));
  auto w2 = OpenTestStoreOrFail(Options(ns));
  ASSERT_TRUE(checker && w1 && w2);
  Writer a(w1.get(), "alpha", 1000), b(w2.get(), "beta", 2000);
  // Let both writers get going, then check again and again while they write.
  while ((a.commits() < 3 || b.commits() < 3) && a.error().empty() && b.error().empty()) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  int checks = 0;
  for (; checks < 8; ++checks) {
    const int before = a.commits() + b.commits();
    auto report = checker->Check();
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_TRUE(report->ok()) << "check " << checks << " while writers commit: "
                              << ::testing::PrintToString(report->problems);
    if (!report->ok()) break;
    // Writers go on between checks (they are held only while one reads).
    while (a.commits() + b.commits() < before + 2 && a.error().empty() &&
           b.error().empty()) {
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
  a.Stop();
  b.Stop();
  EXPECT_EQ(a.error(), "");
  EXPECT_EQ(b.error(), "");
  auto report = checker->Check();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok()) << ::testing::PrintToString(report->problems);
  EXPECT_EQ(report->checkpoints, 4);  // two steps left of each model
}

// Two servers writing models with the same files: a plan that reads the store while
// the other server's write lands may see a step naming a blob that write just removed;
// it is planned again on the new state instead of failing as a corrupt record.
TEST(RadosCheckTest, WritersOfModelsSharingFilesOnTwoServersNeverSeeABrokenView) {
  MGREG_REQUIRE_CEPH();
  const std::string ns = FreshTestNamespace("ck");
  auto w1 = OpenTestStoreOrFail(Options(ns));
  auto w2 = OpenTestStoreOrFail(Options(ns));
  ASSERT_TRUE(w1 && w2);
  Writer a(w1.get(), "alpha", 1000), b(w2.get(), "beta", 1000);
  while (a.commits() + b.commits() < 120 && a.error().empty() && b.error().empty()) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  a.Stop();
  b.Stop();
  EXPECT_EQ(a.error(), "");
  EXPECT_EQ(b.error(), "");
  std::printf("%d + %d commits, %d + %d refused and pushed again\n", a.commits(),
              b.commits(), a.refused(), b.refused());
  auto report = w1->Check();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok()) << ::testing::PrintToString(report->problems);
}

// What the child process runs: open a store whose Check exits the process (status 86)
// right after freezing the registry, as a checker killed while frozen.
TEST(RadosCheckChild, DISABLED_FreezeAndDie) {
  const char* ns = std::getenv(kChildEnv);
  ASSERT_NE(ns, nullptr) << "run by RadosCheckTest only";
  RadosStoreOptions o = Options(ns);
  o.test_crash_at = "check_frozen";
  auto store = OpenTestStoreOrFail(o);
  ASSERT_TRUE(store);
  auto report = store->Check();
  FAIL() << "not stopped while frozen: " << report.status();
}

// Runs the child above to its end; returns its exit status.
int RunChild(const std::string& ns) {
  std::vector<std::string> env_strings = {absl::StrCat(kChildEnv, "=", ns)};
  for (char** e = environ; *e != nullptr; ++e) env_strings.push_back(*e);
  std::vector<char*> env;
  for (std::string& s : env_strings) env.push_back(s.data());
  env.push_back(nullptr);
  std::string exe = "/proc/self/exe", all = "--gtest_also_run_disabled_tests",
              filter = "--gtest_filter=RadosCheckChild.DISABLED_FreezeAndDie";
  char* argv[] = {exe.data(), all.data(), filter.data(), nullptr};
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv, env.data()), 0);
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(RadosCheckTest, CheckerKilledWhileFrozenHoldsWritersOnlyUntilItsWatchExpires) {
  MGREG_REQUIRE_CEPH();
  const std::string ns = FreshTestNamespace("ck");
  RadosStoreOptions o = Options(ns);
  o.freeze_wait = absl::Seconds(60);  // far above the bound: liveness must end it
  auto writer = OpenTestStoreOrFail(o);
  ASSERT_TRUE(writer);
  ASSERT_TRUE(Push(*writer, "m", 1, {{"f", Bytes(2000, 1)}}).ok());
  ASSERT_EQ(RunChild(ns), 86);  // it froze the registry and died
  // The dead checker's freeze ends once its watch expired (watch_timeout 2 s): the
  // commit waits for that, then goes through.
  const absl::Time start = absl::Now();
  auto r = Push(*writer, "m", 2, {{"f", Bytes(2000, 2)}});
  ASSERT_TRUE(r.ok()) << r.status();
  std::printf("commit after a dead checker's freeze took %s (watch timeout 2s)\n",
              absl::FormatDuration(absl::Now() - start).c_str());
  auto report = writer->Check();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok()) << ::testing::PrintToString(report->problems);
  EXPECT_EQ(report->checkpoints, 2);
}

TEST(RadosCheckTest, WriterHeldLongerThanFreezeWaitGetsUnavailableNamingTheFreeze) {
  MGREG_REQUIRE_CEPH();
  const std::string ns = FreshTestNamespace("ck");
  RadosStoreOptions co = Options(ns);
  co.test_hold_freeze = absl::Seconds(3);  // a long metadata scan
  auto checker = OpenTestStoreOrFail(co);
  RadosStoreOptions wo = Options(ns);
  wo.freeze_wait = absl::Milliseconds(300);
  auto writer = OpenTestStoreOrFail(wo);
  ASSERT_TRUE(checker && writer);
  ASSERT_TRUE(Push(*writer, "m", 1, {{"f", Bytes(2000, 1)}}).ok());
  std::thread check([&] {
    auto report = checker->Check();
    EXPECT_TRUE(report.ok()) << report.status();
    if (report.ok()) {
      EXPECT_TRUE(report->ok()) << ::testing::PrintToString(report->problems);
    }
  });
  // Wait until the checker froze the registry: a write is refused naming the freeze.
  absl::Status refused;
  for (int i = 0; i < 100; ++i) {
    auto r = writer->SetAlias("m", "prod", 1);
    if (!r.ok()) {
      refused = r.status();
      break;
    }
    ASSERT_TRUE(writer->RemoveAlias("m", "prod").ok());
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("frozen by a consistency check"));
  EXPECT_THAT(refused.message(), HasSubstr("retry"));
  check.join();
  // Unfrozen: writes go through again, and nothing was half-written.
  ASSERT_TRUE(writer->SetAlias("m", "prod", 1).ok());
  auto report = writer->Check();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok()) << ::testing::PrintToString(report->problems);
}

}  // namespace
}  // namespace mgreg::testing
