// Upload sessions without the service around them: the set of open uploads
// (UploadManager), a session's basename (server/core/uploads.h), and writing a file
// through a FileSink (server/core/upload_file_sink.h).
#include "server/core/uploads.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/upload_file_sink.h"
#include "storage/store.h"

namespace mgreg::testing {
namespace {

using ::testing::HasSubstr;

constexpr size_t kChunkBytes = 4;
const std::string kContent = "0123456789";  // 10 bytes: chunks of 4, 4, 2

class UploadsTest : public ::testing::Test {
 protected:
  // A session of model "m" step 1 announcing "index" (`index`) and "meta".
  std::shared_ptr<UploadSession> NewSession(const std::string& owner = "",
                                            const std::string& index = kContent) {
    v1::BeginUploadRequest request;
    request.set_model("m");
    request.set_step(1);
    std::shared_ptr<UploadSession> session = uploads_.New(request, owner);
    absl::MutexLock lock(&session->mu);
    for (const auto& [name, bytes] :
         {std::pair<std::string, std::string>{"index", index}, {"meta", "graph"}}) {
      UploadFileState& state = session->files[name];
      state.file.set_name(name);
      state.file.set_size(static_cast<int64_t>(bytes.size()));
      state.file.set_sha256(Sha256Hex(bytes));
    }
    EXPECT_TRUE(uploads_.Start(session).ok());
    return session;
  }

  absl::StatusOr<std::unique_ptr<FileSink>> Open(
      std::shared_ptr<UploadSession> session, const std::string& name, int64_t offset = 0,
      absl::Duration lease = absl::Seconds(30)) {
    return OpenUploadFileSink(std::move(session), name, offset, kChunkBytes, store_.get(),
                              lease, [](const std::string&) { return true; });
  }

  std::unique_ptr<Store> store_ = NewMemoryStore();
  UploadManager uploads_{store_.get(), absl::Seconds(30)};
};

TEST_F(UploadsTest, OpenUploadsAreFoundUntilRemoved) {
  std::shared_ptr<UploadSession> a = NewSession();
  std::shared_ptr<UploadSession> b = NewSession();
  EXPECT_NE(a->id(), b->id());
  EXPECT_EQ(uploads_.open_count(), 2u);
  ASSERT_TRUE(uploads_.Find(a->id()).ok());
  EXPECT_TRUE(uploads_.Remove(a->id()).ok());
  EXPECT_TRUE(uploads_.Remove(a->id()).ok());  // OK once gone
  EXPECT_EQ(uploads_.Find(a->id()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(uploads_.Find("never-begun").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(uploads_.open_count(), 1u);
  // A removed session is closed: no file of it can be opened any more.
  EXPECT_EQ(Open(a, "index").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(UploadsTest, IdleUploadsAreTakenAtTheirCutoff) {
  std::shared_ptr<UploadSession> session = NewSession();
  EXPECT_TRUE(uploads_.TakeIdle(absl::Now() - absl::Hours(1)).empty());
  std::vector<std::string> idle = uploads_.TakeIdle(absl::Now() + absl::Seconds(1));
  ASSERT_EQ(idle.size(), 1u);
  EXPECT_EQ(idle[0], session->id());
  EXPECT_EQ(uploads_.open_count(), 0u);
}

TEST_F(UploadsTest, AFileWrittenInPiecesIsCompleteAndCutIntoChunks) {
  std::shared_ptr<UploadSession> session = NewSession();
  absl::StatusOr<std::unique_ptr<FileSink>> sink = Open(session, "index");
  ASSERT_TRUE(sink.ok()) << sink.status();
  ASSERT_TRUE((*sink)->Append("012").ok());
  ASSERT_TRUE((*sink)->Append("3456").ok());
  ASSERT_TRUE((*sink)->Append("789").ok());
  absl::StatusOr<v1::PutFileResponse> done = (*sink)->Finish();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(done->complete());
  EXPECT_EQ(done->held_bytes(), 10);
  absl::MutexLock lock(&session->mu);
  const UploadFileState& state = session->files.at("index");
  EXPECT_TRUE(state.complete);
  ASSERT_EQ(state.chunks.size(), 3u);
  EXPECT_EQ(state.chunks[0].size(), 4u);
  EXPECT_EQ(state.chunks[2].size(), 2u);
  EXPECT_EQ(state.chunks[1].sha256(), Sha256Raw("4567"));
}

TEST_F(UploadsTest, MessagesOfSeveralChunksAreCutAtTheSameOffsets) {
  // Whole chunks go to the store straight from a message; a partial one waits in the
  // sink. Either way the chunks are cut at multiples of the chunk size.
  for (const std::vector<std::string>& messages :
       {std::vector<std::string>{"01234567", "89"},
        {"0", "123456789"},
        {"01", "23456", "789"},
        {"0123456789"}}) {
    std::shared_ptr<UploadSession> session = NewSession();
    absl::StatusOr<std::unique_ptr<FileSink>> sink = Open(session, "index");
    ASSERT_TRUE(sink.ok()) << sink.status();
    for (const std::string& m : messages) ASSERT_TRUE((*sink)->Append(m).ok()) << m;
    absl::StatusOr<v1::PutFileResponse> done = (*sink)->Finish();
    ASSERT_TRUE(done.ok()) << done.status();
    EXPECT_TRUE(done->complete());
    absl::MutexLock lock(&session->mu);
    const UploadFileState& state = session->files.at("index");
    ASSERT_EQ(state.chunks.size(), 3u) << messages[0];
    EXPECT_EQ(state.chunks[0].sha256(), Sha256Raw("0123"));
    EXPECT_EQ(state.chunks[1].sha256(), Sha256Raw("4567"));
    EXPECT_EQ(state.chunks[2].sha256(), Sha256Raw("89"));
  }
}

// A quick append (FileSink::QuickAppend: what PutFile consumes on gRPC's thread) only
// hashes and stages: never more than two chunks, the message that reaches the file's end
// (verification, durability), or one after which the file's state is saved.
TEST_F(UploadsTest, AQuickAppendNeitherEndsTheFileNorSaves) {
  const std::string content(200, 'x');  // 50 chunks of 4
  const absl::Time before_open = absl::Now();
  std::shared_ptr<UploadSession> session = NewSession("", content);
  absl::StatusOr<std::unique_ptr<FileSink>> sink = Open(session, "index");
  ASSERT_TRUE(sink.ok()) << sink.status();
  FileSink& s = **sink;
  // Saves also come with time (a second after the last): claims that assume none came
  // are checked only while less than that has passed since the stream opened.
  const auto untimed = [&] {
    return absl::Now() - before_open < absl::Milliseconds(800);
  };
  EXPECT_TRUE(s.QuickAppend(3) || !untimed());
  EXPECT_TRUE(s.QuickAppend(8) || !untimed());
  EXPECT_FALSE(s.QuickAppend(9));  // more than two chunks
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(s.Append("xxxx").ok());  // 30 unsaved chunks
  if (untimed()) {
    EXPECT_TRUE(s.QuickAppend(7));   // a 31st chunk
    EXPECT_FALSE(s.QuickAppend(8));  // a 32nd: the file's state is saved
  }
  for (int i = 0; i < 18; ++i) ASSERT_TRUE(s.Append("xxxx").ok());  // 48, saved at 32
  EXPECT_TRUE(s.QuickAppend(7) || !untimed());
  EXPECT_FALSE(s.QuickAppend(8));  // the file's last bytes: it is verified
  absl::SleepFor(absl::Seconds(1));
  EXPECT_FALSE(s.QuickAppend(4));  // a second after the last save: this one saves
  ASSERT_TRUE(s.Append("xxxxxxxx").ok());
  EXPECT_FALSE(s.QuickAppend(0));  // complete
  absl::StatusOr<v1::PutFileResponse> done = s.Finish();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(done->complete());
}

TEST_F(UploadsTest, AnIncompleteStreamKeepsWholeChunksAndResumesAtThem) {
  std::shared_ptr<UploadSession> session = NewSession();
  {
    absl::StatusOr<std::unique_ptr<FileSink>> sink = Open(session, "index");
    ASSERT_TRUE(sink.ok()) << sink.status();
    ASSERT_TRUE((*sink)->Append("012345").ok());
    absl::Status ended = (*sink)->Finish().status();
    EXPECT_EQ(ended.code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(ended.message(), HasSubstr("resume with offset 4"));
  }
  // Only 0 (start over) or the held bytes are valid offsets.
  EXPECT_EQ(Open(session, "index", 6).status().code(),
            absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<std::unique_ptr<FileSink>> resumed = Open(session, "index", 4);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ASSERT_TRUE((*resumed)->Append("456789").ok());
  absl::StatusOr<v1::PutFileResponse> done = (*resumed)->Finish();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(done->complete());
}

TEST_F(UploadsTest, BytesThatDoNotMatchTheAnnouncedDigestAreDataLoss) {
  std::shared_ptr<UploadSession> session = NewSession();
  absl::StatusOr<std::unique_ptr<FileSink>> sink = Open(session, "index");
  ASSERT_TRUE(sink.ok()) << sink.status();
  absl::Status s = (*sink)->Append("0123456780");
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("send it again from offset 0"));
  absl::MutexLock lock(&session->mu);
  EXPECT_EQ(session->files.at("index").held, 0);
  EXPECT_FALSE(session->files.at("index").complete);
}

TEST_F(UploadsTest, MoreBytesThanAnnouncedAreRefused) {
  std::shared_ptr<UploadSession> session = NewSession();
  absl::StatusOr<std::unique_ptr<FileSink>> sink = Open(session, "meta");
  ASSERT_TRUE(sink.ok()) << sink.status();
  absl::Status s = (*sink)->Append("graph and more");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("announce the real size"));
}

TEST_F(UploadsTest, OneStreamPerFileAndOnlyFilesOfTheManifest) {
  std::shared_ptr<UploadSession> session = NewSession();
  absl::StatusOr<std::unique_ptr<FileSink>> first = Open(session, "index");
  ASSERT_TRUE(first.ok()) << first.status();
  absl::Status second = Open(session, "index").status();
  EXPECT_EQ(second.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.message(), HasSubstr("being written by another stream"));
  // Another file of the same upload is free.
  EXPECT_TRUE(Open(session, "meta").ok());
  absl::Status unknown = Open(session, "data-00000-of-00001").status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.message(), HasSubstr("its files are: index meta"));
  // Once the first stream is gone, the file can be written again.
  first->reset();
  EXPECT_TRUE(Open(session, "index").ok());
}

TEST_F(UploadsTest, AnUploadLearnsOneBasenameFromItsWriters) {
  std::shared_ptr<UploadSession> session = NewSession();
  absl::MutexLock lock(&session->mu);
  ASSERT_TRUE(session->LearnBasename("model.ckpt").ok());
  EXPECT_EQ(session->basename, "model.ckpt");
  EXPECT_TRUE(session->LearnBasename("model.ckpt").ok());
  absl::Status other = session->LearnBasename("other.ckpt");
  EXPECT_EQ(other.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(other.message(), HasSubstr("learned basename 'model.ckpt'"));
}

TEST_F(UploadsTest, AnOwnersOpenUploadsLendTheirChunksToItsOtherUploads) {
  std::shared_ptr<UploadSession> session = NewSession("alice");
  absl::StatusOr<std::unique_ptr<FileSink>> sink = Open(session, "index");
  ASSERT_TRUE(sink.ok()) << sink.status();
  ASSERT_TRUE((*sink)->Append(kContent).ok());
  EXPECT_TRUE(*uploads_.OwnerHoldsChunk("alice", Sha256Raw("0123")));
  EXPECT_FALSE(*uploads_.OwnerHoldsChunk("bob", Sha256Raw("0123")));
  EXPECT_FALSE(*uploads_.OwnerHoldsChunk("alice", Sha256Raw("nothing")));
  ASSERT_TRUE(uploads_.Remove(session->id()).ok());
  EXPECT_FALSE(*uploads_.OwnerHoldsChunk("alice", Sha256Raw("0123")));
}

// A file of `chunks` distinct chunks of kChunkBytes.
std::string ChunksOf(int chunks) {
  std::string out;
  for (int i = 0; i < chunks; ++i) out += absl::StrFormat("%04d", i);
  return out;
}

// What `uploads` (a server's cache of the store's sessions) holds of `name` now.
int64_t HeldIn(UploadManager& uploads, const std::string& id, const std::string& name) {
  absl::StatusOr<std::shared_ptr<UploadSession>> found = uploads.Find(id);
  EXPECT_TRUE(found.ok()) << found.status();
  if (!found.ok()) return -1;
  absl::MutexLock lock(&(*found)->mu);
  const UploadFileState& state = (*found)->files.at(name);
  EXPECT_EQ(static_cast<int64_t>(state.chunks.size()) * kChunkBytes, state.held);
  return state.held;
}

// A stream saves its file every 32 chunks, not after each (issue 17); a refresh (every
// call's Find) on the writer's server keeps the chunks not saved yet, and the stream's
// end saves them.
TEST_F(UploadsTest, ARefreshDuringAStreamKeepsItsUnsavedChunks) {
  const std::string content = ChunksOf(10);
  std::shared_ptr<UploadSession> session = NewSession("", content);
  UploadManager replica(store_.get(), absl::Seconds(30));  // another server's cache
  absl::StatusOr<std::unique_ptr<FileSink>> sink = Open(session, "index");
  ASSERT_TRUE(sink.ok()) << sink.status();
  ASSERT_TRUE((*sink)->Append(content.substr(0, 24)).ok());  // 6 chunks, none saved
  EXPECT_EQ(HeldIn(uploads_, session->id(), "index"), 24);
  EXPECT_EQ(HeldIn(replica, session->id(), "index"), 0);  // the store's last save
  {
    absl::StatusOr<std::shared_ptr<UploadSession>> found = uploads_.Find(session->id());
    ASSERT_TRUE(found.ok());
    absl::MutexLock lock(&(*found)->mu);
    EXPECT_EQ((*found)->ToProto().files(0).held_bytes(), 24);  // GetUpload here
  }
  ASSERT_TRUE((*sink)->Append(content.substr(24)).ok());
  absl::StatusOr<v1::PutFileResponse> done = (*sink)->Finish();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(done->complete());
  // Complete in the store, every chunk in order.
  absl::StatusOr<std::shared_ptr<UploadSession>> seen = replica.Find(session->id());
  ASSERT_TRUE(seen.ok());
  absl::MutexLock lock(&(*seen)->mu);
  const UploadFileState& state = (*seen)->files.at("index");
  EXPECT_TRUE(state.complete);
  EXPECT_FALSE(state.ahead_of_store);
  ASSERT_EQ(state.chunks.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(state.chunks[i].sha256(), Sha256Raw(content.substr(4 * i, 4))) << i;
  }
}

TEST_F(UploadsTest, AStreamCutBetweenSavesSavesItsChunksAtItsEnd) {
  const std::string content = ChunksOf(10);
  std::shared_ptr<UploadSession> session = NewSession("", content);
  UploadManager replica(store_.get(), absl::Seconds(30));
  {
    absl::StatusOr<std::unique_ptr<FileSink>> sink = Open(session, "index");
    ASSERT_TRUE(sink.ok()) << sink.status();
    ASSERT_TRUE((*sink)->Append(content.substr(0, 22)).ok());  // 5 chunks and a half
    EXPECT_EQ(HeldIn(replica, session->id(), "index"), 0);
    absl::Status ended = (*sink)->Finish().status();
    EXPECT_EQ(ended.code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(ended.message(), HasSubstr("resume with offset 20"));
  }
  EXPECT_EQ(HeldIn(replica, session->id(), "index"), 20);
  // A stream that dies without a word (the client's cancel) saves its chunks too.
  absl::StatusOr<std::unique_ptr<FileSink>> resumed = Open(session, "index", 20);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ASSERT_TRUE((*resumed)->Append(content.substr(20, 8)).ok());
  resumed->reset();
  EXPECT_EQ(HeldIn(replica, session->id(), "index"), 28);
}

// The writer's server dies between saves: another server takes the file over once the
// lease ran out and resumes at the last save; the chunks after it are sent again.
TEST_F(UploadsTest, AReplicaResumesAFileAtItsWritersLastSave) {
  const std::string content = ChunksOf(45);
  std::shared_ptr<UploadSession> session = NewSession("", content);
  UploadManager replica(store_.get(), absl::Seconds(30));
  // A lease of 2 s: saved by time every 0.5 s; 40 chunks in one message take far less.
  absl::StatusOr<std::unique_ptr<FileSink>> dying =
      Open(session, "index", 0, absl::Seconds(2));
  ASSERT_TRUE(dying.ok()) << dying.status();
  ASSERT_TRUE((*dying)->Append(content.substr(0, 160)).ok());
  EXPECT_EQ(HeldIn(uploads_, session->id(), "index"), 160);
  // Saved at 32 chunks: 128 bytes (a stall of 0.5 s would have saved earlier by time,
  // and then again 32 chunks later).
  const int64_t saved = HeldIn(replica, session->id(), "index");
  EXPECT_LT(saved, 160);
  EXPECT_EQ(saved % 4, 0);
  absl::SleepFor(absl::Seconds(2.2));  // the dead server's lease runs out
  absl::StatusOr<std::shared_ptr<UploadSession>> there = replica.Find(session->id());
  ASSERT_TRUE(there.ok());
  absl::StatusOr<std::unique_ptr<FileSink>> taken =
      OpenUploadFileSink(*there, "index", saved, kChunkBytes, store_.get(),
                         absl::Seconds(30), [](const std::string&) { return true; });
  ASSERT_TRUE(taken.ok()) << taken.status();
  ASSERT_TRUE((*taken)->Append(content.substr(static_cast<size_t>(saved))).ok());
  absl::StatusOr<v1::PutFileResponse> done = (*taken)->Finish();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(done->complete());
  // The first stream (its server alive after all) cannot append to the other's file,
  // nor roll it back when it ends.
  EXPECT_FALSE((*dying)->Append(content.substr(160, 4)).ok());
  dying->reset();
  absl::StatusOr<std::shared_ptr<UploadSession>> after = replica.Find(session->id());
  ASSERT_TRUE(after.ok());
  absl::MutexLock lock(&(*after)->mu);
  EXPECT_TRUE((*after)->files.at("index").complete);
  EXPECT_EQ((*after)->files.at("index").chunks.size(), 45u);
}

// A stream this server refuses (another holds the file) leaves the holder's unsaved
// chunks alone.
TEST_F(UploadsTest, ARefusedStreamLeavesTheWritersUnsavedChunks) {
  const std::string content = ChunksOf(10);
  std::shared_ptr<UploadSession> session = NewSession("", content);
  absl::StatusOr<std::unique_ptr<FileSink>> sink = Open(session, "index");
  ASSERT_TRUE(sink.ok()) << sink.status();
  ASSERT_TRUE((*sink)->Append(content.substr(0, 16)).ok());
  EXPECT_EQ(Open(session, "index", 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(HeldIn(uploads_, session->id(), "index"), 16);
  ASSERT_TRUE((*sink)->Append(content.substr(16)).ok());
  absl::StatusOr<v1::PutFileResponse> done = (*sink)->Finish();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(done->complete());
  EXPECT_EQ(HeldIn(uploads_, session->id(), "index"), 40);
}

}  // namespace
}  // namespace mgreg::testing
