// Big transactions on the RADOS store: a step whose transaction is above the inline
// limit (64 KiB: here 1500 chunks of 64 bytes) is decided through an object of its own
// (tx.<instance>.<n>) that the catalog names; any process rolls it forward from that
// object; none is left once it is published; one no catalog names is garbage for the
// GC; a transaction above max_txn_bytes is refused with a clear error and nothing.
#include <rados/librados.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/rados/rados_store.h"
#include "tests/testing/rados_test_util.h"
#include "tests/testing/store_test_util.h"

namespace mgreg::testing {
namespace {

using ::testing::HasSubstr;

constexpr size_t kSmallChunk = 64;
constexpr size_t kBigFile = 1500 * kSmallChunk;  // 1500 chunks: ~120 KB of transaction

// The namespace's objects whose name starts with `prefix`, through librados.
std::set<std::string> Objects(const std::string& ns, const std::string& prefix) {
  librados::Rados rados;
  EXPECT_TRUE(ConnectToCluster(TestCephConf(), &rados).ok());
  librados::IoCtx io;
  EXPECT_EQ(rados.ioctx_create(kTestCephPool, io), 0);
  io.set_namespace(ns);
  std::set<std::string> out;
  for (auto it = io.nobjects_begin(); it != io.nobjects_end(); ++it) {
    if (it->get_oid().rfind(prefix, 0) == 0) out.insert(it->get_oid());
  }
  io.close();
  rados.shutdown();
  return out;
}

void ExpectClean(Store& store, int64_t checkpoints) {
  auto report = store.Check();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok()) << ::testing::PrintToString(report->problems);
  EXPECT_EQ(report->checkpoints, checkpoints);
}

TEST(RadosTxnTest, BigStepIsRolledForwardFromItsTransactionObjectAndLeavesNone) {
  MGREG_REQUIRE_CEPH();
  const std::string ns = FreshTestNamespace("tx");
  auto healthy = OpenTestStoreOrFail(TestStoreOptions(ns));
  ASSERT_TRUE(healthy);
  const std::string content = Bytes(kBigFile, 1);
  {
    // This writer decides the big transaction and stops, as one that died would.
    RadosStoreOptions o = TestStoreOptions(ns);
    o.test_stop_after = 1;
    auto stopped = OpenTestStoreOrFail(o);
    ASSERT_TRUE(stopped);
    auto r = Push(*stopped, "big", 1, {{"w.data", content}}, false, kSmallChunk);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
    // Decided through an object of its own, which the catalog names.
    EXPECT_EQ(Objects(ns, "tx.").size(), 1u);
  }
  // The next write (another process) reads it from that object and rolls it forward.
  ASSERT_TRUE(Push(*healthy, "small", 1, {{"f", Bytes(100, 2)}}).ok());
  auto latest = healthy->GetLatest("big");
  ASSERT_TRUE(latest.ok()) << latest.status();
  ASSERT_EQ(latest->files_size(), 1);
  auto blob = healthy->GetBlob(latest->files(0).sha256());
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(blob->chunks_size(), 1500);
  std::string restored;
  for (const auto& ref : blob->chunks()) {
    auto bytes = healthy->ReadChunk(ref);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    restored += *bytes;
  }
  EXPECT_EQ(restored, content);
  EXPECT_EQ(Objects(ns, "tx."), std::set<std::string>());  // removed once published

  // A big commit straight through, and the big delete (1500 chunks going down).
  ASSERT_TRUE(
      Push(*healthy, "big", 2, {{"w.data", Bytes(kBigFile, 3)}}, false, kSmallChunk)
          .ok());
  EXPECT_EQ(Objects(ns, "tx."), std::set<std::string>());
  ExpectClean(*healthy, 3);
  ASSERT_TRUE(healthy->DeleteCheckpoint("big", 1).ok());
  EXPECT_EQ(Objects(ns, "tx."), std::set<std::string>());
  ExpectClean(*healthy, 2);
}

TEST(RadosTxnTest, TransactionAboveTheLimitIsRefusedNamingItAndWritesNothing) {
  MGREG_REQUIRE_CEPH();
  const std::string ns = FreshTestNamespace("tx");
  RadosStoreOptions o = TestStoreOptions(ns);
  o.max_txn_bytes = 100 << 10;  // the real limit is 120 MiB (kMaxTxnBytes)
  auto store = OpenTestStoreOrFail(o);
  ASSERT_TRUE(store);
  auto r =
      Push(*store, "big", 1, {{"w.data", Bytes(2 * kBigFile, 1)}}, false, kSmallChunk);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("committing step 1 of model 'big'"));
  EXPECT_THAT(r.status().message(), HasSubstr("3000 chunks"));
  EXPECT_THAT(r.status().message(), HasSubstr("at most 102400 bytes per transaction"));
  EXPECT_THAT(r.status().message(), HasSubstr("bigger chunks"));
  EXPECT_EQ(store->GetLatest("big").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Objects(ns, "tx."), std::set<std::string>());
  // The same files in bigger chunks go through.
  ASSERT_TRUE(Push(*store, "big", 1, {{"w.data", Bytes(2 * kBigFile, 1)}}).ok());
  ExpectClean(*store, 1);
}

TEST(RadosTxnTest, TransactionObjectNoCatalogNamesIsRemovedByTheGc) {
  MGREG_REQUIRE_CEPH();
  const std::string ns = FreshTestNamespace("tx");
  RadosStoreOptions o = TestStoreOptions(ns);
  o.dead_after = absl::Seconds(1);
  o.gc_period = absl::Milliseconds(250);
  o.orphan_scan_period = absl::Milliseconds(250);
  auto store = OpenTestStoreOrFail(o);
  ASSERT_TRUE(store);
  {
    // What a writer that died between writing its transaction and deciding it leaves.
    librados::Rados rados;
    ASSERT_TRUE(ConnectToCluster(TestCephConf(), &rados).ok());
    librados::IoCtx io;
    ASSERT_EQ(rados.ioctx_create(kTestCephPool, io), 0);
    io.set_namespace(ns);
    librados::bufferlist bl;
    bl.append("not decided");
    ASSERT_EQ(io.write_full("tx.12345.1", bl), 0);
    io.close();
    rados.shutdown();
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!Objects(ns, "tx.").empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(Objects(ns, "tx."), std::set<std::string>());
  ASSERT_TRUE(Push(*store, "m", 1, {{"f", Bytes(100, 1)}}).ok());
  ExpectClean(*store, 1);
}

}  // namespace
}  // namespace mgreg::testing
