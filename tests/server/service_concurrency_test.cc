// The registry service's core under concurrency, without a transport, so ThreadSanitizer
// sees every access (scripts/sanitize.sh thread; the gRPC-based server tests go through
// Debian's uninstrumented gRPC, whose internal hand-offs TSan cannot see). Writers push
// steps to a shared model and to their own, readers follow the latest step and read its
// files, a watcher pulls events, and a janitor aborts unknown uploads and expires idle
// ones, all at once.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "server/core/registry_service.h"
#include "storage/store.h"
#include "tests/testing/checkpoint_builder.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

struct Files {
  std::vector<std::pair<std::string, std::string>> named;  // file name -> bytes
};

Files MakeFiles(const std::string& dir) {
  CheckpointSpec spec;
  spec.directory = dir;
  spec.step = 1;
  spec.num_shards = 2;
  spec.tensors = {{"w", FloatBytes(300, 1), 0}, {"b", FloatBytes(70, 2), 1}};
  spec.meta = SmallMetaGraphBytes();
  const std::string prefix = WriteCheckpoint(spec);
  Files f;
  for (const char* name :
       {"index", "meta", "data-00000-of-00002", "data-00001-of-00002"}) {
    f.named.emplace_back(name, ReadFileOrDie(prefix + "." + name));
  }
  return f;
}

// One whole upload through the service: begin, put every file the store does not hold
// yet (in 100-byte messages), commit. Returns the first error.
absl::Status Push(RegistryService& service, const std::string& model, int64_t step,
                  const Files& files) {
  v1::BeginUploadRequest begin;
  begin.set_model(model);
  begin.set_step(step);
  begin.set_basename("model.ckpt");
  for (const auto& [name, bytes] : files.named) {
    v1::FileInfo* f = begin.add_files();
    f->set_name(name);
    f->set_size(static_cast<int64_t>(bytes.size()));
    f->set_sha256(Sha256Hex(bytes));
  }
  absl::StatusOr<v1::Upload> upload = service.BeginUpload(begin);
  if (!upload.ok()) return upload.status();
  for (const auto& [name, bytes] : files.named) {
    // Content the store already holds (an earlier step's) is complete at BeginUpload.
    bool complete = false;
    for (const v1::UploadFile& f : upload->files()) {
      if (f.file().name() == name && f.held_bytes() == f.file().size()) complete = true;
    }
    if (complete) continue;
    v1::PutFileRequest::Header header;
    header.set_upload_id(upload->upload_id());
    header.set_name(name);
    absl::StatusOr<std::unique_ptr<FileSink>> sink = service.OpenFileSink(header);
    if (!sink.ok()) return sink.status();
    for (size_t pos = 0; pos < bytes.size(); pos += 100) {
      if (absl::Status s = (*sink)->Append(absl::string_view(bytes).substr(pos, 100));
          !s.ok()) {
        return s;
      }
    }
    if (absl::StatusOr<v1::PutFileResponse> r = (*sink)->Finish(); !r.ok())
      return r.status();
  }
  v1::CommitUploadRequest commit;
  commit.set_upload_id(upload->upload_id());
  return service.CommitUpload(commit).status();
}

TEST(ServiceConcurrencyTest, WritersReadersWatcherAndJanitorAtOnce) {
  TempDir dir;
  const Files files = MakeFiles(dir.path());
  std::unique_ptr<Store> store = NewMemoryStore();
  RegistryServiceOptions options;
  options.chunk_bytes = 256;
  options.default_retention.set_max_to_keep(3);
  RegistryService service(store.get(), options);
  ASSERT_TRUE(Push(service, "shared", 0, files).ok());

  constexpr int kWriters = 3, kSteps = 8;
  std::atomic<bool> done{false};
  std::atomic<int> failures{0}, reads{0}, events{0}, notified{0};

  v1::WatchCheckpointsRequest watch;
  watch.set_all_models(true);
  absl::StatusOr<std::shared_ptr<WatchSubscription>> sub =
      service.Watch(watch, [&]() { ++notified; });
  ASSERT_TRUE(sub.ok()) << sub.status();

  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w]() {
      for (int s = 1; s <= kSteps; ++s) {
        absl::Status own = Push(service, absl::StrCat("own", w), s, files);
        EXPECT_TRUE(own.ok()) << own;
        // The same step of the shared model from every writer: identical content, so
        // each push either commits it or finds it committed (idempotent).
        absl::Status shared = Push(service, "shared", s, files);
        EXPECT_TRUE(shared.ok()) << shared;
        if (!own.ok() || !shared.ok()) ++failures;
      }
    });
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&]() {
      while (!done) {
        v1::GetLatestCheckpointRequest latest;
        latest.set_model("shared");
        absl::StatusOr<v1::Checkpoint> cp = service.GetLatestCheckpoint(latest);
        if (!cp.ok()) continue;
        v1::ReadFileRequest read;
        read.set_model("shared");
        read.set_step(cp->step());
        read.set_name("index");
        absl::StatusOr<std::unique_ptr<MessageSource<v1::FileChunk>>> source =
            service.ReadFile(read);
        if (!source.ok()) continue;  // deleted by retention meanwhile
        v1::FileChunk chunk;
        while (true) {
          absl::StatusOr<bool> more = (*source)->Next(&chunk);
          if (!more.ok() || !*more) break;
        }
        ++reads;
      }
    });
  }
  threads.emplace_back([&]() {
    while (!done) {
      absl::StatusOr<std::optional<v1::WatchEvent>> e = (*sub)->Next();
      if (e.ok() && e->has_value()) ++events;
      v1::AbortUploadRequest abort;
      abort.set_upload_id("no-such-upload");
      service.AbortUpload(abort).IgnoreError();
      (void)service.ExpireIdleUploads();
      (void)service.open_uploads();
      std::this_thread::yield();
    }
  });
  for (int w = 0; w < kWriters; ++w) threads[w].join();
  // The writers can finish before a reader completes one read (the whole run takes tens
  // of milliseconds); keep the readers going until one has, bounded, so the check below
  // is about reads failing, not about thread start-up order.
  const absl::Time read_deadline = absl::Now() + absl::Seconds(10);
  while (reads.load() == 0 && absl::Now() < read_deadline) std::this_thread::yield();
  done = true;
  for (size_t i = kWriters; i < threads.size(); ++i) threads[i].join();
  service.Unwatch(*sub);

  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(reads.load(), 0);
  v1::GetLatestCheckpointRequest latest;
  latest.set_model("shared");
  absl::StatusOr<v1::Checkpoint> cp = service.GetLatestCheckpoint(latest);
  ASSERT_TRUE(cp.ok()) << cp.status();
  EXPECT_EQ(cp->step(), kSteps);
  for (int w = 0; w < kWriters; ++w) {
    latest.set_model(absl::StrCat("own", w));
    cp = service.GetLatestCheckpoint(latest);
    ASSERT_TRUE(cp.ok()) << cp.status();
    EXPECT_EQ(cp->step(), kSteps);
  }
}

}  // namespace
}  // namespace mgreg::testing
