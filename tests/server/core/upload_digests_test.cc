// The digests an upload verifies (server/core/upload_digests.h) and how a FileSink uses
// them (server/core/uploads.h, issue 17): with the default 1 MiB chunks the chunked
// SHA-256 comes from the chunk digests, and a chunk the store holds is not read back
// unless a whole-file SHA-256 was announced.
#include "server/core/upload_digests.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/file_digest.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/upload_file_sink.h"
#include "server/core/uploads.h"
#include "storage/testing/fault_injection_store.h"
#include "tests/testing/store_test_util.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

using ::testing::HasSubstr;

constexpr size_t kMiB = size_t{1} << 20;

// `chunk_bytes` pieces of `data` fed to `d` as a sink would.
void Feed(UploadDigests& d, const std::string& data, size_t chunk_bytes) {
  for (size_t pos = 0; pos < data.size(); pos += chunk_bytes) {
    const std::string piece = data.substr(pos, chunk_bytes);
    storage::ChunkRef ref = RefOf(piece);
    d.AddChunk(ref, d.needs_bytes() ? piece : std::string());
  }
}

TEST(UploadDigestsTest, OneMiBChunksGiveTheChunkedDigestWithoutTheirBytes) {
  const std::string data = Bytes(5 * kMiB / 2, 1);
  UploadDigests d(/*whole=*/false, kMiB);
  EXPECT_FALSE(d.needs_bytes());
  Feed(d, data, kMiB);
  EXPECT_EQ(d.chunked_hex(), ChunkedSha256Hex(data));
  EXPECT_EQ(d.whole_hex(), "");
}

TEST(UploadDigestsTest, OtherChunkSizesAndAWholeFileDigestNeedTheBytes) {
  const std::string data = Bytes(5 * kMiB / 2, 2);
  UploadDigests small(/*whole=*/false, 64 << 10);
  EXPECT_TRUE(small.needs_bytes());
  Feed(small, data, 64 << 10);
  EXPECT_EQ(small.chunked_hex(), ChunkedSha256Hex(data));
  UploadDigests both(/*whole=*/true, kMiB);
  EXPECT_TRUE(both.needs_bytes());
  Feed(both, data, kMiB);
  EXPECT_EQ(both.chunked_hex(), ChunkedSha256Hex(data));
  EXPECT_EQ(both.whole_hex(), Sha256Hex(data));
}

TEST(UploadDigestsTest, AShortChunkBeforeTheEndMatchesNoDigest) {
  UploadDigests d(/*whole=*/false, kMiB);
  d.AddChunk(RefOf("short"), "");
  d.AddChunk(RefOf(Bytes(kMiB, 3)), "");
  EXPECT_EQ(d.chunked_hex(), "");
}

RocksDbStoreOptions RocksOptions(const std::string& path) {
  RocksDbStoreOptions options;
  options.path = path;
  options.sync_commits = false;
  options.min_free_bytes = 0;
  return options;
}

// Sinks over a store that can fail reads of chunk bytes.
class DigestSinkTest : public ::testing::Test {
 protected:
  // A session of "m" step `step` announcing one file "data" of `content` with the
  // digests asked for.
  std::shared_ptr<UploadSession> NewSession(int64_t step, const std::string& content,
                                            bool chunked, bool whole,
                                            const std::string& owner = "o") {
    v1::BeginUploadRequest request;
    request.set_model("m");
    request.set_step(step);
    std::shared_ptr<UploadSession> session = uploads_.New(request, owner);
    absl::MutexLock lock(&session->mu);
    UploadFileState& state = session->files["data"];
    state.file.set_name("data");
    state.file.set_size(static_cast<int64_t>(content.size()));
    if (chunked) state.file.set_chunked_sha256(ChunkedSha256Hex(content));
    if (whole) state.file.set_sha256(Sha256Hex(content));
    EXPECT_TRUE(uploads_.Start(session).ok());
    return session;
  }

  absl::StatusOr<std::unique_ptr<FileSink>> Open(std::shared_ptr<UploadSession> session,
                                                 int64_t offset = 0) {
    return OpenUploadFileSink(std::move(session), "data", offset, kMiB, &store_,
                              absl::Seconds(30), [](const std::string&) { return true; });
  }

  // Writes `content` as chunk-sized messages and finishes.
  absl::Status Write(std::shared_ptr<UploadSession> session, const std::string& content) {
    absl::StatusOr<std::unique_ptr<FileSink>> sink = Open(std::move(session));
    if (!sink.ok()) return sink.status();
    for (size_t pos = 0; pos < content.size(); pos += kMiB) {
      if (absl::Status s = (*sink)->Append(content.substr(pos, kMiB)); !s.ok()) return s;
    }
    return (*sink)->Finish().status();
  }

  // Names every chunk of `content` as existing_chunk.
  absl::Status WriteByReference(std::shared_ptr<UploadSession> session,
                                const std::string& content) {
    absl::StatusOr<std::unique_ptr<FileSink>> sink = Open(std::move(session));
    if (!sink.ok()) return sink.status();
    for (size_t pos = 0; pos < content.size(); pos += kMiB) {
      absl::Status s = (*sink)->AppendExistingChunk(Sha256Raw(content.substr(pos, kMiB)));
      if (!s.ok()) return s;
    }
    return (*sink)->Finish().status();
  }

  const UploadFileState& State(UploadSession& session) {
    absl::MutexLock lock(&session.mu);
    return session.files.at("data");
  }

  // A real RocksDB store (its HoldExistingChunk checks a named chunk's stored size).
  TempDir dir_;
  FaultInjectionStore store_{OpenRocksDbStore(RocksOptions(dir_.path())).value()};
  UploadManager uploads_{&store_, absl::Seconds(30)};
};

TEST_F(DigestSinkTest, AChunkedDigestIsVerifiedAndAWholeFileOneIsNotNeeded) {
  const std::string content = Bytes(5 * kMiB / 2, 4);
  std::shared_ptr<UploadSession> session = NewSession(1, content, true, false);
  ASSERT_TRUE(Write(session, content).ok());
  EXPECT_TRUE(State(*session).complete);
  EXPECT_EQ(State(*session).file.sha256(), "");
}

TEST_F(DigestSinkTest, AWholeFileDigestAloneIsVerifiedAndTheChunkedOneRecorded) {
  const std::string content = Bytes(5 * kMiB / 2, 5);
  std::shared_ptr<UploadSession> session = NewSession(1, content, false, true);
  ASSERT_TRUE(Write(session, content).ok());
  EXPECT_TRUE(State(*session).complete);
  EXPECT_EQ(State(*session).file.chunked_sha256(), ChunkedSha256Hex(content));
}

TEST_F(DigestSinkTest, BytesThatMatchNeitherAnnouncedDigestAreDataLossNamingWhich) {
  const std::string content = Bytes(3 * kMiB / 2, 6);
  std::string other = content;
  other[kMiB + 7] ^= 1;
  absl::Status chunked = Write(NewSession(1, content, true, false), other);
  EXPECT_EQ(chunked.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(chunked.message(), HasSubstr("file 'data': the chunked SHA-256"));
  // Both announced: each is checked; a whole-file digest that is wrong fails too.
  std::shared_ptr<UploadSession> both = NewSession(2, content, true, true);
  {
    absl::MutexLock lock(&both->mu);
    both->files.at("data").file.set_sha256(Sha256Hex("not it"));
  }
  absl::Status whole = Write(both, content);
  EXPECT_EQ(whole.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(whole.message(), HasSubstr("the SHA-256 of the received bytes"));
  EXPECT_EQ(State(*both).held, 0) << "the file starts over";
}

TEST_F(DigestSinkTest, ExistingChunksAreNotReadBackForAChunkedDigest) {
  const std::string content = Bytes(5 * kMiB / 2, 7);
  ASSERT_TRUE(Write(NewSession(1, content, true, false), content).ok());  // staged, held
  store_.FailNext(FaultOp::kReadChunk, absl::InternalError("read back"), 100);
  std::shared_ptr<UploadSession> session = NewSession(2, content, true, false);
  ASSERT_TRUE(WriteByReference(session, content).ok());
  EXPECT_TRUE(State(*session).complete);
}

TEST_F(DigestSinkTest, AnAnnouncedWholeFileDigestStillReadsExistingChunksBack) {
  const std::string content = Bytes(5 * kMiB / 2, 8);
  ASSERT_TRUE(Write(NewSession(1, content, true, false), content).ok());
  store_.FailNext(FaultOp::kReadChunk, absl::InternalError("read back"), 100);
  absl::Status s = WriteByReference(NewSession(2, content, false, true), content);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
}

TEST_F(DigestSinkTest, AnExistingChunkOfAnotherSizeIsRefused) {
  // Committed content whose last chunk is short; naming it at a whole-chunk slot.
  const std::string stored = Bytes(kMiB + 10, 9);
  ASSERT_TRUE(Push(store_, "other", 1, {{"data", stored}}, false, kMiB).ok());
  const std::string tail = stored.substr(kMiB);
  const std::string content = Bytes(2 * kMiB, 10);
  std::shared_ptr<UploadSession> session = NewSession(1, content, true, false);
  absl::StatusOr<std::unique_ptr<FileSink>> sink = Open(session);
  ASSERT_TRUE(sink.ok());
  absl::Status s = (*sink)->AppendExistingChunk(Sha256Raw(tail));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("file 'data' at offset 0"));
}

TEST_F(DigestSinkTest, AResumedFileIsVerifiedWithoutReadingItsHeldChunks) {
  const std::string content = Bytes(5 * kMiB / 2, 11);
  std::shared_ptr<UploadSession> session = NewSession(1, content, true, false);
  {
    absl::StatusOr<std::unique_ptr<FileSink>> sink = Open(session);
    ASSERT_TRUE(sink.ok());
    ASSERT_TRUE((*sink)->Append(content.substr(0, kMiB + 100)).ok());
    EXPECT_EQ((*sink)->Finish().status().code(), absl::StatusCode::kDataLoss);
  }
  ASSERT_EQ(State(*session).held, static_cast<int64_t>(kMiB));
  {
    // As if another server wrote the held bytes: the digest state is rebuilt, from the
    // chunk digests alone.
    absl::MutexLock lock(&session->mu);
    session->files.at("data").hashed = 0;
  }
  store_.FailNext(FaultOp::kReadChunk, absl::InternalError("read back"), 100);
  absl::StatusOr<std::unique_ptr<FileSink>> sink = Open(session, kMiB);
  ASSERT_TRUE(sink.ok()) << sink.status();
  ASSERT_TRUE((*sink)->Append(content.substr(kMiB)).ok());
  ASSERT_TRUE((*sink)->Finish().ok());
  EXPECT_TRUE(State(*session).complete);
}

// Issue 17: a file announced without a digest, written through one server, and its
// final digest given through another (a RADOS replica; here a second UploadManager on
// the same store, whose cache starts empty). The file's state, with no digest, is read
// from the session store; the digest state is rebuilt from the held chunks.
class LateDigestTest : public DigestSinkTest {
 protected:
  std::shared_ptr<UploadSession> Undigested(const std::string& content) {
    v1::BeginUploadRequest request;
    request.set_model("m");
    request.set_step(1);
    std::shared_ptr<UploadSession> session = uploads_.New(request, "o");
    absl::MutexLock lock(&session->mu);
    UploadFileState& state = session->files["data"];
    state.file.set_name("data");
    state.file.set_size(static_cast<int64_t>(content.size()));
    state.announced_without_digest = true;
    EXPECT_TRUE(uploads_.Start(session).ok());
    return session;
  }

  // Every byte of `content` through a sink of `chunk_bytes` chunks, no digest.
  void WriteAll(std::shared_ptr<UploadSession> session, const std::string& content,
                size_t chunk_bytes) {
    absl::StatusOr<std::unique_ptr<FileSink>> sink =
        OpenUploadFileSink(std::move(session), "data", 0, chunk_bytes, &store_,
                           absl::Seconds(30), [](const std::string&) { return true; });
    ASSERT_TRUE(sink.ok()) << sink.status();
    ASSERT_TRUE((*sink)->Append(content).ok());
    absl::StatusOr<v1::PutFileResponse> done = (*sink)->Finish();
    ASSERT_TRUE(done.ok()) << done.status();
    EXPECT_FALSE(done->complete());
    EXPECT_EQ(done->held_bytes(), static_cast<int64_t>(content.size()));
  }

  // The upload as a second server sees it.
  std::shared_ptr<UploadSession> OnSecondServer(const std::string& id) {
    absl::StatusOr<std::shared_ptr<UploadSession>> found = second_.Find(id);
    EXPECT_TRUE(found.ok()) << found.status();
    return found.ok() ? *found : nullptr;
  }

  UploadManager second_{&store_, absl::Seconds(30)};
};

TEST_F(LateDigestTest, ASecondServerCompletesAFileWithTheDigestGivenThere) {
  for (size_t chunk_bytes : {kMiB, size_t{64} << 10}) {
    SCOPED_TRACE(chunk_bytes);
    const std::string content = Bytes(5 * kMiB / 2, 12);
    std::shared_ptr<UploadSession> session = Undigested(content);
    WriteAll(session, content, chunk_bytes);
    std::shared_ptr<UploadSession> there = OnSecondServer(session->id());
    ASSERT_NE(there, nullptr);
    ASSERT_NE(there.get(), session.get());
    {
      const UploadFileState& state = State(*there);
      EXPECT_EQ(state.held, static_cast<int64_t>(content.size()));
      EXPECT_FALSE(state.complete);
      EXPECT_TRUE(state.announced_without_digest);
      EXPECT_EQ(state.file.chunked_sha256(), "");
    }
    absl::StatusOr<std::unique_ptr<FileSink>> sink = OpenUploadFileSink(
        there, "data", static_cast<int64_t>(content.size()), chunk_bytes, &store_,
        absl::Seconds(30), [](const std::string&) { return true; });
    ASSERT_TRUE(sink.ok()) << sink.status();
    ASSERT_TRUE((*sink)->Append("").ok());
    ASSERT_TRUE((*sink)->GiveFinalDigest(ChunkedSha256Hex(content)).ok());
    ASSERT_TRUE((*sink)->Finish().ok());
    EXPECT_TRUE(State(*there).complete);
    // The first server reads the same from the store.
    ASSERT_TRUE(uploads_.Find(session->id()).ok());
    EXPECT_TRUE(State(*session).complete);
    EXPECT_EQ(State(*session).file.chunked_sha256(), ChunkedSha256Hex(content));
  }
}

TEST_F(LateDigestTest, AWrongDigestGivenOnASecondServerDropsTheBytesAndItself) {
  const std::string content = Bytes(3 * kMiB / 2, 13);
  std::shared_ptr<UploadSession> session = Undigested(content);
  WriteAll(session, content, kMiB);
  std::shared_ptr<UploadSession> there = OnSecondServer(session->id());
  ASSERT_NE(there, nullptr);
  // A whole-file digest in the header of a file announced without one: the second
  // server reads the held chunks back to compute it.
  GivenDigests given;
  given.sha256 = Sha256Hex("other bytes");
  absl::StatusOr<std::unique_ptr<FileSink>> sink = OpenUploadFileSink(
      there, "data", static_cast<int64_t>(content.size()), kMiB, &store_,
      absl::Seconds(30), [](const std::string&) { return true; }, given);
  ASSERT_TRUE(sink.ok()) << sink.status();
  absl::Status s = (*sink)->Append("");
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("the SHA-256 of the received bytes is ",
                                                  Sha256Hex(content),
                                                  " but its writer "
                                                  "gave ",
                                                  given.sha256)));
  ASSERT_TRUE(uploads_.Find(session->id()).ok());
  EXPECT_EQ(State(*session).held, 0);
  EXPECT_EQ(State(*session).file.sha256(), "");
  EXPECT_EQ(State(*session).file.chunked_sha256(), "");
  EXPECT_FALSE(State(*session).complete);
}

TEST_F(LateDigestTest, AFailedReadBackChangesNothingAndTheWriterCanRetry) {
  const std::string content = Bytes(3 * kMiB / 2, 14);
  std::shared_ptr<UploadSession> session = Undigested(content);
  WriteAll(session, content, kMiB);
  std::shared_ptr<UploadSession> there = OnSecondServer(session->id());
  ASSERT_NE(there, nullptr);
  // A whole-file digest needs the held chunks read back on the second server; the
  // store fails that read.
  GivenDigests given;
  given.sha256 = Sha256Hex(content);
  auto open = [&]() {
    return OpenUploadFileSink(
        there, "data", static_cast<int64_t>(content.size()), kMiB, &store_,
        absl::Seconds(30), [](const std::string&) { return true; }, given);
  };
  store_.FailNext(FaultOp::kReadChunk, absl::UnavailableError("disk gone"), 1);
  absl::StatusOr<std::unique_ptr<FileSink>> failed = open();
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable) << failed.status();
  {
    // The file is as it was: no digest adopted, its bytes held, not yet hashed here.
    const UploadFileState& state = State(*there);
    EXPECT_EQ(state.file.sha256(), "");
    EXPECT_EQ(state.held, static_cast<int64_t>(content.size()));
    EXPECT_NE(state.hashed, state.held);
  }
  // The same header again, once the store reads: the file completes.
  absl::StatusOr<std::unique_ptr<FileSink>> sink = open();
  ASSERT_TRUE(sink.ok()) << sink.status();
  ASSERT_TRUE((*sink)->Append("").ok());
  ASSERT_TRUE((*sink)->GiveFinalDigest(ChunkedSha256Hex(content)).ok());
  ASSERT_TRUE((*sink)->Finish().ok());
  EXPECT_TRUE(State(*there).complete);
  EXPECT_EQ(State(*there).file.sha256(), Sha256Hex(content));
}

}  // namespace
}  // namespace mgreg::testing
