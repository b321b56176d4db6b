// What only the RocksDB store promises: persistence across reopen, exclusive use of
// the data dir, and crash safety (a killed process leaves the old state or the new one,
// and the chunks of an aborted upload are collected at the next open).
#include <linux/magic.h>
#include <signal.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "storage/rocksdb/rocksdb_backend.h"
#include "storage/store.h"
#include "tests/testing/process_util.h"
#include "tests/testing/store_test_util.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

using ::mgreg::testing::Bytes;
using ::mgreg::testing::MakeFile;
using ::mgreg::testing::MakeRequest;
using ::mgreg::testing::OpenRocksDbStoreOrFail;
using ::mgreg::testing::Push;
using ::mgreg::testing::RefOf;
using ::mgreg::testing::RunSelfUntilKilled;
using ::mgreg::testing::TempDir;
using ::mgreg::testing::TestFile;

TEST(RocksDbStoreTest, ReopenKeepsEverythingAndRebuildsLatest) {
  TempDir dir;
  const std::string graph = Bytes(300000, 1);  // above the WAL threshold: flushed path
  {
    auto store = OpenRocksDbStoreOrFail(dir.path());
    ASSERT_NE(store, nullptr);
    for (int step : {10, 30, 20}) {
      ASSERT_TRUE(Push(*store, "resnet", step,
                       {{"index", absl::StrCat("i", step)}, {"meta", graph}}, false,
                       65536)
                      .ok());
    }
    ASSERT_TRUE(Push(*store, "team-a/bert", 1, {{"index", "b"}}).ok());
    ASSERT_TRUE(store->DeleteCheckpoint("resnet", 30).ok());
  }
  auto store = OpenRocksDbStoreOrFail(dir.path());
  ASSERT_NE(store, nullptr);
  auto latest = store->GetLatest("resnet");
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->step(), 20);
  EXPECT_EQ(latest->files(0).sha256(), Sha256Hex("i20"));
  auto models = store->ListModels("", 10);
  ASSERT_TRUE(models.ok());
  ASSERT_EQ(models->size(), 2u);
  EXPECT_EQ((*models)[0].name(), "resnet");
  EXPECT_EQ((*models)[0].checkpoint_count(), 2);
  EXPECT_EQ((*models)[1].name(), "team-a/bert");
  auto stats = store->GetStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->models, 2);
  EXPECT_EQ(stats->checkpoints, 3);
  EXPECT_EQ(stats->blobs, 4);
  EXPECT_EQ(stats->chunk_bytes, 300000 + 3 + 3 + 1);
  EXPECT_EQ(stats->revision, 5);
  auto blob = store->GetBlob(Sha256Hex(graph));
  ASSERT_TRUE(blob.ok());
  std::string joined;
  for (const auto& c : blob->chunks()) {
    auto b = store->ReadChunk(c);
    ASSERT_TRUE(b.ok()) << b.status();
    joined += *b;
  }
  EXPECT_EQ(joined, graph);
  // The next commit continues the revision.
  auto r = Push(*store, "resnet", 40, {{"index", "i40"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->record.revision(), 6);
}

TEST(RocksDbStoreTest, SecondOpenOfTheSameDirReturnsFailedPrecondition) {
  TempDir dir;
  auto first = OpenRocksDbStoreOrFail(dir.path());
  ASSERT_NE(first, nullptr);
  RocksDbStoreOptions o;
  o.path = dir.path();
  auto second = OpenRocksDbStore(o);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition)
      << second.status();
}

TEST(RocksDbStoreTest, OpenOfADirThatIsNotAStoreReturnsFailedPrecondition) {
  TempDir dir;
  testing::WriteFileOrDie(dir.Join("notes.txt"), "hello");
  RocksDbStoreOptions o;
  o.path = dir.path();
  EXPECT_EQ(OpenRocksDbStore(o).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(RocksDbStoreTest, OpenWithoutAPathReturnsInvalidArgument) {
  EXPECT_EQ(OpenRocksDbStore(RocksDbStoreOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RocksDbStoreTest, StagingAreaOutlivingTheStoreIsSafe) {
  TempDir dir;
  auto store = OpenRocksDbStoreOrFail(dir.path());
  ASSERT_NE(store, nullptr);
  auto area = store->NewStagingArea();
  const std::string bytes = Bytes(1000, 2);
  ASSERT_TRUE(area->PutChunk(RefOf(bytes), bytes).ok());
  store.reset();
  area.reset();
  store = OpenRocksDbStoreOrFail(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->ReadChunk(RefOf(bytes)).status().code(), absl::StatusCode::kNotFound);
}

// StagingArea::MakeDurable (the server calls it as a file's last byte arrives): the
// chunks written without the WAL go to a blob file before the commit, which then
// flushes nothing; the committed step reads back after a reopen.
// The store writes its flushed files with O_DIRECT where the file system allows it
// (OpenRocksDbBackend), with the page cache elsewhere (tmpfs before Linux 6.6).
void StagesMakesDurableCommitsAndReadsBack(const std::string& path) {
  auto store = OpenRocksDbStoreOrFail(path);
  ASSERT_NE(store, nullptr);
  // Chunks of 100 KB: above the WAL threshold (64 KiB), so staged in the memtable only.
  const TestFile file = MakeFile("data-00000-of-00001", Bytes(300000, 9), 100000);
  auto area = store->NewStagingArea();
  for (int i = 0; i < file.blob.chunks_size(); ++i) {
    ASSERT_TRUE(area->PutChunk(file.blob.chunks(i), file.chunks[i]).ok());
  }
  auto blob_bytes = [&] {
    absl::StatusOr<StoreStats> stats = store->GetStats();
    EXPECT_TRUE(stats.ok()) << stats.status();
    return stats.ok() ? stats->blob_file_bytes : -1;
  };
  EXPECT_EQ(blob_bytes(), 0);
  ASSERT_TRUE(area->MakeDurable().ok());
  const int64_t durable = blob_bytes();
  EXPECT_GE(durable, 300000);
  ASSERT_TRUE(area->MakeDurable().ok());  // nothing left to write
  EXPECT_EQ(blob_bytes(), durable);
  ASSERT_TRUE(store->Commit(MakeRequest("m", 1, {file}), area.get()).ok());
  EXPECT_EQ(blob_bytes(), durable);
  area.reset();
  store.reset();
  store = OpenRocksDbStoreOrFail(path);
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < file.blob.chunks_size(); ++i) {
    absl::StatusOr<std::string> read = store->ReadChunk(file.blob.chunks(i));
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(*read, file.chunks[static_cast<size_t>(i)]);
  }
}

TEST(RocksDbStoreTest, MakeDurableWritesStagedChunksToDiskBeforeTheCommit) {
  TempDir dir;
  StagesMakesDurableCommitsAndReadsBack(dir.path());
}

TEST(RocksDbStoreTest, WorksOnAFileSystemWithoutDirectIo) {
  struct statfs fs;
  if (statfs("/dev/shm", &fs) != 0 || fs.f_type != TMPFS_MAGIC) {
    GTEST_SKIP() << "no tmpfs at /dev/shm";
  }
  char tmpl[] = "/dev/shm/mgreg-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string path = tmpl;
  if (rocks::DirectWritesWork(path)) {
    std::filesystem::remove_all(path);
    GTEST_SKIP() << "tmpfs takes O_DIRECT on this kernel (Linux 6.6 and later)";
  }
  StagesMakesDurableCommitsAndReadsBack(path);
  std::filesystem::remove_all(path);
}

std::unique_ptr<Store> OpenWithWindow(const std::string& path, int64_t event_window) {
  RocksDbStoreOptions o;
  o.path = path;
  o.event_window = event_window;
  auto s = OpenRocksDbStore(o);
  if (!s.ok()) {
    ADD_FAILURE() << s.status();
    return nullptr;
  }
  return std::move(*s);
}

TEST(RocksDbStoreTest, EventsAliasesPinsRetentionAndRevisionSurviveReopen) {
  TempDir dir;
  std::vector<std::string> events_before;
  {
    auto store = OpenRocksDbStoreOrFail(dir.path());
    ASSERT_NE(store, nullptr);
    for (int step : {1, 2, 3, 4}) {
      ASSERT_TRUE(Push(*store, "m", step, {{"index", absl::StrCat(step)}}).ok());
    }
    ASSERT_TRUE(store->SetAlias("m", "best", 2).ok());
    ASSERT_TRUE(store->SetPinned("m", 3, true).ok());
    storage::RetentionPolicy policy;
    policy.set_max_to_keep(2);
    ASSERT_TRUE(store->SetRetention("m", policy).ok());
    ASSERT_TRUE(store->ApplyRetention("m", {1, 2, 3}, {4}, 555).ok());  // deletes 1
    ASSERT_TRUE(store->SetRetention("settings-only", policy).ok());
    auto page = store->ReadEvents(0, 0);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& e : page->events) events_before.push_back(e.SerializeAsString());
  }
  auto store = OpenRocksDbStoreOrFail(dir.path());
  ASSERT_NE(store, nullptr);
  auto page = store->ReadEvents(0, 0);
  ASSERT_TRUE(page.ok()) << page.status();
  std::vector<std::string> events_after;
  for (const auto& e : page->events) events_after.push_back(e.SerializeAsString());
  EXPECT_EQ(events_after, events_before);
  ASSERT_EQ(events_after.size(), 6u);
  EXPECT_EQ(page->oldest_revision, 1);
  EXPECT_EQ(page->current_revision, 6);
  auto stats = store->GetStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->revision, 6);
  EXPECT_EQ(stats->models, 1);
  EXPECT_EQ(stats->checkpoints, 3);

  auto model = store->GetModel("m");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->aliases().at("best"), 2);
  EXPECT_EQ(model->retention().max_to_keep(), 2);
  EXPECT_EQ(model->last_preserved_micros(), 555);
  EXPECT_EQ(model->latest_step(), 4);
  EXPECT_EQ(model->checkpoint_count(), 3);
  auto pinned = store->GetCheckpoint("m", 3);
  ASSERT_TRUE(pinned.ok());
  EXPECT_TRUE(pinned->pinned());
  auto latest = store->GetLatest("m");
  ASSERT_TRUE(latest.ok());
  EXPECT_TRUE(latest->preserved());
  EXPECT_EQ(store->DeleteCheckpoint("m", 2).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto settings_only = store->GetModel("settings-only");
  ASSERT_TRUE(settings_only.ok()) << settings_only.status();
  EXPECT_EQ(settings_only->checkpoint_count(), 0);
  auto listed = store->ListModels("", 0);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name(), "m");

  // The revision continues, and so does the event log.
  auto r = store->SetAlias("m", "best", 4);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 7);
  page = store->ReadEvents(6, 0);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->events.size(), 1u);
  EXPECT_EQ(page->events[0].revision(), 7);
}

TEST(RocksDbStoreTest, AReaderResumingAfterARestartMissesNothing) {
  TempDir dir;
  int64_t resume_after = 0;
  {
    auto store = OpenRocksDbStoreOrFail(dir.path());
    ASSERT_NE(store, nullptr);
    for (int step = 0; step < 3; ++step) {
      ASSERT_TRUE(Push(*store, "m", step, {{"index", absl::StrCat(step)}}).ok());
    }
    auto page = store->ReadEvents(0, 0);
    ASSERT_TRUE(page.ok());
    resume_after = page->events.back().revision();
    // Written after the reader's last read, before the restart.
    ASSERT_TRUE(store->DeleteCheckpoint("m", 0).ok());
    ASSERT_TRUE(Push(*store, "m", 3, {{"index", "3"}}).ok());
  }
  auto store = OpenRocksDbStoreOrFail(dir.path());
  ASSERT_NE(store, nullptr);
  auto page = store->ReadEvents(resume_after, 0);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->events.size(), 2u);
  EXPECT_EQ(page->events[0].revision(), 4);
  EXPECT_EQ(page->events[0].type(), storage::Event::DELETED);
  EXPECT_EQ(page->events[0].step(), 0);
  EXPECT_EQ(page->events[1].revision(), 5);
  EXPECT_EQ(page->events[1].type(), storage::Event::COMMITTED);
  EXPECT_EQ(page->events[1].step(), 3);
}

TEST(RocksDbStoreTest, ReopenWithASmallerEventWindowTrimsTheLog) {
  TempDir dir;
  {
    auto store = OpenRocksDbStoreOrFail(dir.path());
    ASSERT_NE(store, nullptr);
    for (int step = 0; step < 10; ++step) {
      ASSERT_TRUE(Push(*store, "m", step, {{"index", absl::StrCat(step)}}).ok());
    }
  }
  auto store = OpenWithWindow(dir.path(), 4);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->ReadEvents(5, 0).status().code(), absl::StatusCode::kOutOfRange);
  auto page = store->ReadEvents(6, 0);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->oldest_revision, 7);
  EXPECT_EQ(page->current_revision, 10);
  ASSERT_EQ(page->events.size(), 4u);
  ASSERT_TRUE(Push(*store, "m", 10, {{"index", "10"}}).ok());
  page = store->ReadEvents(7, 0);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->oldest_revision, 8);
  EXPECT_EQ(page->events.size(), 4u);
}

// The crash tests run their writer in a fresh process (this binary re-executed with
// MGREG_STORE_CRASH_CHILD set): a plain fork() would inherit RocksDB's background
// thread pool without its threads. The child kills itself with SIGKILL at the point
// under test; exit code 2 reports a failure inside it.
constexpr char kChildEnv[] = "MGREG_STORE_CRASH_CHILD";
constexpr char kDirEnv[] = "MGREG_STORE_CRASH_DIR";

void RunChildUntilKilled(const std::string& scenario, const std::string& dir) {
  RunSelfUntilKilled("RocksDbStoreCrashChild.Run",
                     {{kChildEnv, scenario}, {kDirEnv, dir}});
}

// The data both sides of a crash test agree on.
struct CrashData {
  std::vector<std::string> staged;  // scenario "before-commit"
  std::string orphan;               // scenario "after-commit"
  TestFile data_file, index_file;
  CrashData() {
    // 24 x 4 MiB: more than one chunk memtable, so some staged bytes reach the disk;
    // and a small chunk that goes through the WAL.
    for (int i = 0; i < 24; ++i) staged.push_back(Bytes(kMaxChunkBytes, 100 + i));
    staged.push_back(Bytes(100, 99));
    orphan = Bytes(kMaxChunkBytes, 9);
    data_file = MakeFile("data-00000-of-00001", Bytes(3 * kMaxChunkBytes + 12345, 7),
                         kMaxChunkBytes);
    index_file = MakeFile("index", Bytes(5000, 8), kMaxChunkBytes);
  }
};

bool RunCrashChild(const std::string& scenario, const std::string& dir) {
  CrashData d;
  auto store = OpenRocksDbStoreOrFail(dir);
  if (store == nullptr) return false;
  auto area = store->NewStagingArea();
  if (scenario == "before-commit") {
    for (const std::string& c : d.staged) {
      if (!area->PutChunk(RefOf(c), c).ok()) return false;
    }
  } else if (scenario == "after-commit") {
    if (!area->PutChunk(RefOf(d.orphan), d.orphan).ok()) return false;
    for (const TestFile* f : {&d.data_file, &d.index_file}) {
      for (int i = 0; i < f->blob.chunks_size(); ++i) {
        if (!area->PutChunk(f->blob.chunks(i), f->chunks[i]).ok()) return false;
      }
    }
    auto r = store->Commit(MakeRequest("resnet", 1000, {d.data_file, d.index_file}),
                           area.get());
    if (!r.ok() || r->unchanged) return false;
  } else {
    return false;
  }
  kill(getpid(), SIGKILL);  // dies with the store and the staging area open
  return false;
}

TEST(RocksDbStoreCrashChild, Run) {
  const char* scenario = std::getenv(kChildEnv);
  const char* dir = std::getenv(kDirEnv);
  if (scenario == nullptr || dir == nullptr) {
    GTEST_SKIP() << "runs only as the child of a crash test";
  }
  if (!RunCrashChild(scenario, dir)) _exit(2);
}

TEST(RocksDbStoreTest, CrashBeforeCommitLeavesNothingAndCollectsTheStagedChunks) {
  TempDir dir;
  CrashData d;
  RunChildUntilKilled("before-commit", dir.path());
  auto store = OpenRocksDbStoreOrFail(dir.path());
  ASSERT_NE(store, nullptr);
  auto stats = store->GetStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->checkpoints, 0);
  EXPECT_EQ(stats->chunks, 0);
  EXPECT_EQ(stats->staged_chunks, 0);
  EXPECT_EQ(stats->revision, 0);
  auto models = store->ListModels("", 0);
  ASSERT_TRUE(models.ok());
  EXPECT_TRUE(models->empty());
  for (const std::string& c : d.staged) {
    EXPECT_EQ(store->ReadChunk(RefOf(c)).status().code(), absl::StatusCode::kNotFound);
    auto has = store->HasChunk(RefOf(c));
    ASSERT_TRUE(has.ok());
    EXPECT_FALSE(*has);
  }
}

TEST(RocksDbStoreTest, CrashRightAfterCommitKeepsTheStepWhole) {
  TempDir dir;
  CrashData d;
  RunChildUntilKilled("after-commit", dir.path());
  auto store = OpenRocksDbStoreOrFail(dir.path());
  ASSERT_NE(store, nullptr);
  auto latest = store->GetLatest("resnet");
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->step(), 1000);
  ASSERT_EQ(latest->files_size(), 2);
  for (const TestFile* f : {&d.data_file, &d.index_file}) {
    auto blob = store->GetBlob(f->record.sha256());
    ASSERT_TRUE(blob.ok()) << blob.status();
    std::string joined;
    for (const auto& c : blob->chunks()) {
      auto b = store->ReadChunk(c);
      ASSERT_TRUE(b.ok()) << b.status();
      joined += *b;
    }
    EXPECT_EQ(joined, f->content);
  }
  // The orphan was made durable by the commit's flush, and collected at open.
  EXPECT_EQ(store->ReadChunk(RefOf(d.orphan)).status().code(),
            absl::StatusCode::kNotFound);
  auto stats = store->GetStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->staged_chunks, 0);
  EXPECT_EQ(stats->chunk_bytes, static_cast<int64_t>(d.data_file.content.size() +
                                                     d.index_file.content.size()));
  EXPECT_EQ(stats->revision, 1);
}

}  // namespace
}  // namespace mgreg
