// The pipelined sender (client/pipelined_upload.h) against a fake PutFile stream: every
// byte arrives once and in order, held chunks are named window by window, the final
// digest rides on the last message, and every way a send can fail ends with the threads
// joined and the stream cancelled or finished as the header says.
#include "client/pipelined_upload.h"

#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_digest.h"
#include "common/sha256.h"
#include "common/upload_limits.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int64_t kMiB = int64_t{1} << 20;

std::string RandomBytes(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string out(static_cast<size_t>(n), '\0');
  for (char& c : out) c = static_cast<char>(gen());
  return out;
}

// Records what a server would receive; fails the `fail_at`-th Write if asked.
class FakeStream : public PutFileStream {
 public:
  bool Write(const v1::PutFileRequest& message) override {
    if (static_cast<int>(messages.size()) == fail_at) return false;
    messages.push_back(message);
    return true;
  }
  absl::StatusOr<v1::PutFileResponse> Finish(bool done) override {
    finished = true;
    writes_done = done;
    if (!finish_status.ok()) return finish_status;
    v1::PutFileResponse response;
    response.set_held_bytes(12345);
    return response;
  }
  void Cancel() override { cancelled = true; }

  std::vector<v1::PutFileRequest> messages;
  int fail_at = -1;
  absl::Status finish_status;
  bool finished = false;
  bool writes_done = false;
  bool cancelled = false;
};

v1::PutFileRequest::Header Header() {
  v1::PutFileRequest::Header h;
  h.set_upload_id("u1");
  h.set_name("data-00000-of-00001");
  return h;
}

// Small windows so that a few MiB cross several: 2 MiB windows, 3 of them, 3 hashers.
PipelinedSend Options(int64_t size) {
  PipelinedSend send;
  send.size = size;
  send.send_final_digest = true;
  send.threads = 3;
  send.window_bytes = 2 * kMiB;
  send.windows = 3;
  return send;
}

// The SHA-256 (raw) of each of `content`'s 1 MiB pieces numbered in `pieces`.
std::set<std::string> PieceDigests(const std::string& content,
                                   const std::set<int64_t>& pieces) {
  std::set<std::string> out;
  for (int64_t p : pieces) {
    out.insert(Sha256Raw(content.substr(static_cast<size_t>(p * kMiB), kMiB)));
  }
  return out;
}

// A FindChunks answering from the digests in `held`; appends each call's count to *asked.
FindChunksFn HeldFinder(const std::set<std::string>& held, std::vector<size_t>* asked) {
  return [&held, asked](const std::vector<std::string>& digests) {
    asked->push_back(digests.size());
    std::vector<bool> out;
    for (const std::string& d : digests) out.push_back(held.count(d) > 0);
    return absl::StatusOr<std::vector<bool>>(out);
  };
}

class PipelinedUploadTest : public ::testing::Test {
 protected:
  // Writes `content` to a file and opens it.
  LocalFile Open(const std::string& content) {
    path_ = tmp_.Join("file");
    WriteFileOrDie(path_, content);
    absl::StatusOr<LocalFile> file = LocalFile::OpenForRead(path_);
    EXPECT_TRUE(file.ok()) << file.status();
    return *std::move(file);
  }

  // `sent` is DATA_LOSS naming the file, the stream was cancelled and never finished,
  // and its messages carried at most `max_bytes` of data and never the final digest.
  void ExpectDataLossWithin(const absl::StatusOr<PipelinedSendResult>& sent,
                            const FakeStream& stream, int64_t max_bytes) {
    EXPECT_EQ(sent.status().code(), absl::StatusCode::kDataLoss) << sent.status();
    EXPECT_THAT(sent.status().message(), HasSubstr(path_));
    EXPECT_TRUE(stream.cancelled);
    EXPECT_FALSE(stream.finished);
    int64_t sent_bytes = 0;
    for (const v1::PutFileRequest& m : stream.messages) {
      sent_bytes += static_cast<int64_t>(m.data().size());
      EXPECT_TRUE(m.final_chunked_sha256().empty());
    }
    EXPECT_LE(sent_bytes, max_bytes);
  }

  // The file the fake server would hold from offset `offset` on, with `content` giving
  // the bytes of named chunks; checks the protocol's shape on the way (header first and
  // only there, existing chunks at piece boundaries, no message over `message_bytes`,
  // one across a piece boundary only of whole pieces (to the file's end), the final
  // digest on the last message only).
  std::string Received(const FakeStream& stream, const std::string& content,
                       int64_t offset,
                       size_t message_bytes = PipelinedSend{}.message_bytes) {
    std::string out;
    for (size_t i = 0; i < stream.messages.size(); ++i) {
      const v1::PutFileRequest& m = stream.messages[i];
      EXPECT_EQ(m.has_header(), i == 0) << i;
      if (i + 1 < stream.messages.size()) {
        EXPECT_TRUE(m.final_chunked_sha256().empty()) << i;
      }
      const int64_t pos = offset + static_cast<int64_t>(out.size());
      EXPECT_LE((m.data().empty() ? 0 : 1) + (m.existing_chunk().empty() ? 0 : 1) +
                    (m.existing_chunks().empty() ? 0 : 1),
                1)
          << i;  // one kind per message
      if (!m.existing_chunks().empty()) {
        EXPECT_EQ(pos % kMiB, 0) << i;
        for (const std::string& name : m.existing_chunks()) {
          const std::string piece =
              content.substr(static_cast<size_t>(offset) + out.size(), kMiB);
          EXPECT_EQ(name, Sha256Raw(piece)) << i;
          out += piece;
        }
      } else if (!m.existing_chunk().empty()) {
        EXPECT_EQ(pos % kMiB, 0) << i;
        const std::string piece = content.substr(static_cast<size_t>(pos), kMiB);
        EXPECT_EQ(m.existing_chunk(), Sha256Raw(piece)) << i;
        out += piece;
      } else {
        EXPECT_LE(m.data().size(), message_bytes) << i;
        const int64_t end = pos + static_cast<int64_t>(m.data().size());
        if (end - pos > kMiB - pos % kMiB) {  // across a piece boundary
          EXPECT_EQ(pos % kMiB, 0) << i;
          EXPECT_TRUE(end % kMiB == 0 || end == static_cast<int64_t>(content.size()))
              << i;
        }
        out += m.data();
      }
    }
    return out;
  }

  TempDir tmp_;
  std::string path_;
};

// Window boundaries: empty, under one piece, under one window, exactly one window, an
// exact multiple of windows, one byte over.
class PipelinedBoundaryTest : public PipelinedUploadTest,
                              public ::testing::WithParamInterface<int64_t> {};

TEST_P(PipelinedBoundaryTest, EveryByteArrivesOnceWithTheChunkedDigestAtTheEnd) {
  const int64_t size = GetParam();
  const std::string content = RandomBytes(size, static_cast<uint32_t>(size));
  LocalFile file = Open(content);
  FakeStream stream;
  PushStats stats;
  std::vector<std::pair<int64_t, int64_t>> progress;
  PipelinedSend send = Options(size);
  send.stats = &stats;
  send.progress = [&](int64_t done, int64_t total) {
    progress.emplace_back(done, total);
  };
  absl::StatusOr<PipelinedSendResult> sent =
      SendFilePipelined(file, Header(), stream, send);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_EQ(sent->response.held_bytes(), 12345);
  EXPECT_TRUE(stream.finished && stream.writes_done && !stream.cancelled);
  ASSERT_FALSE(stream.messages.empty());
  EXPECT_EQ(stream.messages[0].header().upload_id(), "u1");
  EXPECT_EQ(stream.messages[0].header().offset(), 0);
  EXPECT_TRUE(Received(stream, content, 0) == content);
  EXPECT_EQ(stream.messages.back().final_chunked_sha256(), ChunkedSha256Hex(content));
  EXPECT_EQ(sent->chunked_sha256, ChunkedSha256Hex(content));
  EXPECT_EQ(stats.bytes_sent, size);
  EXPECT_EQ(stats.bytes_deduplicated_chunks, 0);
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back(), std::make_pair(size, size));
}

INSTANTIATE_TEST_SUITE_P(Sizes, PipelinedBoundaryTest,
                         ::testing::Values(0, 1, kMiB + kMiB / 2, 2 * kMiB, 6 * kMiB,
                                           6 * kMiB + 1));

// Hashers take two consecutive pieces and hash them together (Sha256RawPair); the last
// piece of an odd count, short or whole, is hashed alone, and a pair may span two
// windows (windows of 1 or 3 pieces). Every piece's own digest must land in its own
// place: each is checked where FindChunks asks about it and where a held one is named.
struct PairingCase {
  int64_t size;
  int64_t window_pieces;
  int windows;
  int threads;
};

class PipelinedPairingTest : public PipelinedUploadTest,
                             public ::testing::WithParamInterface<PairingCase> {};

TEST_P(PipelinedPairingTest, EachPieceOfAPairGetsItsOwnDigestInItsOwnPlace) {
  const PairingCase c = GetParam();
  const std::string content = RandomBytes(c.size, static_cast<uint32_t>(c.size + 1));
  LocalFile file = Open(content);
  const std::vector<std::string> expected = ChunkSha256s(content, kMiB);
  PipelinedSend send = Options(c.size);
  send.threads = c.threads;
  send.window_bytes = c.window_pieces * kMiB;
  send.windows = c.windows;
  std::vector<std::string> asked;
  send.find_chunks = [&](const std::vector<std::string>& digests) {
    asked.insert(asked.end(), digests.begin(), digests.end());
    std::vector<bool> held;  // every third piece, counted from the file's start
    for (size_t j = asked.size() - digests.size(); j < asked.size(); ++j) {
      held.push_back(j % 3 == 1);
    }
    return absl::StatusOr<std::vector<bool>>(held);
  };
  FakeStream stream;
  absl::StatusOr<PipelinedSendResult> sent =
      SendFilePipelined(file, Header(), stream, send);
  ASSERT_TRUE(sent.ok()) << sent.status();
  if (expected.size() > 1) {
    EXPECT_EQ(asked, expected);
  }
  EXPECT_TRUE(Received(stream, content, 0) == content);
  EXPECT_EQ(sent->chunked_sha256, ChunkedSha256Hex(content));
  EXPECT_EQ(stream.messages.back().final_chunked_sha256(), ChunkedSha256Hex(content));
}

INSTANTIATE_TEST_SUITE_P(
    OddCountsAndWindows, PipelinedPairingTest,
    ::testing::Values(PairingCase{100, 2, 3, 1},           // one short piece
                      PairingCase{100, 1, 2, 2},           // one short piece, 2 hashers
                      PairingCase{3 * kMiB, 2, 3, 1},      // odd count, last whole
                      PairingCase{5 * kMiB + 7, 2, 3, 1},  // even count, last short
                      PairingCase{4 * kMiB + 7, 2, 3, 2},  // odd count, last short
                      PairingCase{7 * kMiB + 7, 1, 2, 1},  // every pair spans windows
                      PairingCase{7 * kMiB + 7, 1, 2, 3},  // the same, 3 hashers
                      PairingCase{11 * kMiB, 3, 2, 1},     // odd windows: some span
                      PairingCase{11 * kMiB + 1, 3, 3, 2}));

// A pair whose second piece cannot be read (the file shrank into it): the error comes
// back, neither piece of the pair is sent (the first read fine), nor anything after it.
// Windows of one piece, so the pair's first piece is a window of its own.
TEST_F(PipelinedUploadTest, AReadErrorOnTheSecondPieceOfAPairSendsNeitherPiece) {
  const int64_t size = 8 * kMiB;
  LocalFile file = Open(RandomBytes(size, 31));
  fs::resize_file(path_, 3 * kMiB + 10);  // pair (2, 3): piece 3 is short
  for (int threads : {1, 2}) {
    PipelinedSend send = Options(size);
    send.threads = threads;
    send.window_bytes = kMiB;
    send.windows = 4;
    FakeStream stream;
    SCOPED_TRACE(absl::StrCat(threads, " threads"));
    ExpectDataLossWithin(SendFilePipelined(file, Header(), stream, send), stream,
                         2 * kMiB);
  }
}

TEST_F(PipelinedUploadTest, HeldChunksAreNamedWindowByWindowAndTheRestSent) {
  const int64_t size = 7 * kMiB + 5;  // 8 pieces (the last of 5 bytes), 4 windows
  const std::string content = RandomBytes(size, 7);
  LocalFile file = Open(content);
  const std::set<std::string> held = PieceDigests(content, {1, 4, 7});
  std::vector<size_t> asked;
  PushStats stats;
  PipelinedSend send = Options(size);
  send.stats = &stats;
  send.find_chunks = HeldFinder(held, &asked);
  FakeStream stream;
  absl::StatusOr<PipelinedSendResult> sent =
      SendFilePipelined(file, Header(), stream, send);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_THAT(asked, ::testing::ElementsAre(2, 2, 2, 2));  // one FindChunks per window
  EXPECT_TRUE(Received(stream, content, 0) == content);
  int existing = 0;
  for (const v1::PutFileRequest& m : stream.messages)
    existing += !m.existing_chunk().empty();
  EXPECT_EQ(existing, 3);
  // One held chunk per message by default: what a server without
  // accepts_existing_chunks takes.
  for (const v1::PutFileRequest& m : stream.messages) {
    EXPECT_TRUE(m.existing_chunks().empty());
  }
  EXPECT_EQ(stats.bytes_deduplicated_chunks, 2 * kMiB + 5);
  EXPECT_EQ(stats.bytes_sent, size - stats.bytes_deduplicated_chunks);
  // The last message names the held 5-byte chunk and carries the digest.
  EXPECT_FALSE(stream.messages.back().existing_chunk().empty());
  EXPECT_EQ(stream.messages.back().final_chunked_sha256(), ChunkedSha256Hex(content));
}

// Whole pieces are gathered two to a message (2 MiB, the default), the server hashing
// both chunks together; a named chunk, the file's end and a resume inside a piece end a
// message early.
TEST_F(PipelinedUploadTest, WholePiecesAreGatheredIntoMessagesOfTwo) {
  const int64_t size = 7 * kMiB + 5;  // 8 pieces (the last of 5 bytes), 4 windows
  const std::string content = RandomBytes(size, 19);
  LocalFile file = Open(content);
  const std::string held = Sha256Raw(content.substr(2 * kMiB, kMiB));
  PushStats stats;
  PipelinedSend send = Options(size);
  send.stats = &stats;
  send.find_chunks = [&](const std::vector<std::string>& digests) {
    std::vector<bool> out;
    for (const std::string& d : digests) out.push_back(d == held);
    return absl::StatusOr<std::vector<bool>>(out);
  };
  FakeStream stream;
  ASSERT_TRUE(SendFilePipelined(file, Header(), stream, send).ok());
  EXPECT_TRUE(Received(stream, content, 0) == content);
  std::vector<int64_t> shape;  // data bytes per message, -1 for a named chunk
  for (const v1::PutFileRequest& m : stream.messages) {
    shape.push_back(m.existing_chunk().empty() ? static_cast<int64_t>(m.data().size())
                                               : -1);
  }
  EXPECT_THAT(shape, ::testing::ElementsAre(2 * kMiB, -1, 2 * kMiB, 2 * kMiB, 5));
  EXPECT_EQ(stats.bytes_sent, size - kMiB);
  EXPECT_EQ(stream.messages.back().final_chunked_sha256(), ChunkedSha256Hex(content));

  // Resumed inside piece 2: its rest alone, then pieces 3-4, 5-6, and the last.
  FakeStream resumed;
  send.offset = 2 * kMiB + 10;
  send.find_chunks = nullptr;
  ASSERT_TRUE(SendFilePipelined(file, Header(), resumed, send).ok());
  EXPECT_TRUE(Received(resumed, content, send.offset) == content.substr(send.offset));
  shape.clear();
  for (const v1::PutFileRequest& m : resumed.messages) {
    shape.push_back(static_cast<int64_t>(m.data().size()));
  }
  EXPECT_THAT(shape, ::testing::ElementsAre(kMiB - 10, 2 * kMiB, 2 * kMiB, 5));
}

// The shape of each message: "D<bytes>" for data, "N" for one existing_chunk,
// "B<count>" for existing_chunks, "+h" with the header, "+d" with the final digest.
std::vector<std::string> Shapes(const FakeStream& stream) {
  std::vector<std::string> out;
  for (const v1::PutFileRequest& m : stream.messages) {
    std::string shape =
        !m.existing_chunks().empty()  ? absl::StrCat("B", m.existing_chunks_size())
        : !m.existing_chunk().empty() ? "N"
                                      : absl::StrCat("D", m.data().size());
    if (m.has_header()) shape += "+h";
    if (!m.final_chunked_sha256().empty()) shape += "+d";
    out.push_back(shape);
  }
  return out;
}

// For a server that accepts_existing_chunks: consecutive held pieces of a window go in
// one message (existing_chunks); bytes that follow, and the window's end, send it.
TEST_F(PipelinedUploadTest, HeldPiecesOfAWindowAreNamedInOneMessage) {
  const int64_t size = 8 * kMiB + 5;  // 9 pieces (the last of 5 bytes)
  const std::string content = RandomBytes(size, 31);
  LocalFile file = Open(content);
  const std::set<std::string> held = PieceDigests(content, {0, 1, 2, 4, 6, 7, 8});
  std::vector<size_t> asked;
  PushStats stats;
  PipelinedSend send = Options(size);
  send.window_bytes = 4 * kMiB;  // windows: pieces 0-3, 4-7, 8
  send.existing_chunks_per_message = 1024;
  send.stats = &stats;
  std::vector<std::pair<int64_t, int64_t>> progress;
  send.progress = [&](int64_t done, int64_t total) {
    progress.emplace_back(done, total);
  };
  send.find_chunks = HeldFinder(held, &asked);
  FakeStream stream;
  absl::StatusOr<PipelinedSendResult> sent =
      SendFilePipelined(file, Header(), stream, send);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_THAT(asked, ::testing::ElementsAre(4, 4, 1));
  EXPECT_TRUE(Received(stream, content, 0) == content);
  // Window 0: pieces 0-2 named, piece 3 sent (its message waits for a second piece
  // until piece 4 is named); window 1: 4 named, 5 sent, 6-7 named; window 2: 8 named
  // with the digest.
  const std::string mib = absl::StrCat("D", kMiB);
  EXPECT_THAT(Shapes(stream),
              ::testing::ElementsAre("B3+h", mib, "B1", mib, "B2", "B1+d"));
  EXPECT_EQ(stream.messages.back().final_chunked_sha256(), ChunkedSha256Hex(content));
  EXPECT_EQ(stats.bytes_deduplicated_chunks, 6 * kMiB + 5);
  EXPECT_EQ(stats.bytes_sent, 2 * kMiB);
  // Progress once per message, at the bytes the messages so far stand for.
  std::vector<int64_t> done;
  for (const auto& [d, total] : progress) done.push_back(d);
  EXPECT_THAT(done, ::testing::ElementsAre(3 * kMiB, 4 * kMiB, 5 * kMiB, 6 * kMiB,
                                           8 * kMiB, size));
}

// A window of held pieces longer than existing_chunks_per_message goes in messages of
// at most that many.
TEST_F(PipelinedUploadTest, HeldPiecesAreNamedInMessagesOfAtMostTheBound) {
  const int64_t size = 5 * kMiB;
  const std::string content = RandomBytes(size, 37);
  LocalFile file = Open(content);
  PipelinedSend send = Options(size);
  send.window_bytes = 8 * kMiB;  // one window
  send.existing_chunks_per_message = 2;
  send.find_chunks = [&](const std::vector<std::string>& digests) {
    return absl::StatusOr<std::vector<bool>>(std::vector<bool>(digests.size(), true));
  };
  FakeStream stream;
  ASSERT_TRUE(SendFilePipelined(file, Header(), stream, send).ok());
  EXPECT_TRUE(Received(stream, content, 0) == content);
  EXPECT_THAT(Shapes(stream), ::testing::ElementsAre("B2+h", "B2", "B1+d"));
}

TEST_F(PipelinedUploadTest, AOnePieceFileIsNotAskedAbout) {
  const std::string content = RandomBytes(1000, 3);
  LocalFile file = Open(content);
  int calls = 0;
  PipelinedSend send = Options(1000);
  send.find_chunks = [&](const std::vector<std::string>&) {
    ++calls;
    return absl::StatusOr<std::vector<bool>>(std::vector<bool>{true});
  };
  FakeStream stream;
  ASSERT_TRUE(SendFilePipelined(file, Header(), stream, send).ok());
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(Received(stream, content, 0), content);
}

TEST_F(PipelinedUploadTest, AResumeSendsFromTheOffsetAndDigestsTheHeldPrefix) {
  const int64_t size = 5 * kMiB + 7;
  const int64_t offset = 2 * kMiB + kMiB / 2;  // inside piece 2
  const std::string content = RandomBytes(size, 11);
  LocalFile file = Open(content);
  std::vector<std::string> asked;
  PushStats stats;
  PipelinedSend send = Options(size);
  send.offset = offset;
  send.stats = &stats;
  send.find_chunks = [&](const std::vector<std::string>& digests) {
    asked.insert(asked.end(), digests.begin(), digests.end());
    return absl::StatusOr<std::vector<bool>>(std::vector<bool>(digests.size(), false));
  };
  FakeStream stream;
  absl::StatusOr<PipelinedSendResult> sent =
      SendFilePipelined(file, Header(), stream, send);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_EQ(stream.messages[0].header().offset(), offset);
  EXPECT_TRUE(Received(stream, content, offset) == content.substr(offset));
  EXPECT_EQ(stats.bytes_sent, size - offset);
  // Only pieces wholly after the offset are asked about (3, 4, 5).
  std::vector<std::string> expected;
  for (int64_t p = 3; p * kMiB < size; ++p) {
    expected.push_back(Sha256Raw(content.substr(static_cast<size_t>(p * kMiB), kMiB)));
  }
  EXPECT_EQ(asked, expected);
  EXPECT_EQ(stream.messages.back().final_chunked_sha256(), ChunkedSha256Hex(content));
}

TEST_F(PipelinedUploadTest, EveryByteHeldSendsOneMessageWithHeaderAndDigest) {
  const int64_t size = 3 * kMiB;
  const std::string content = RandomBytes(size, 13);
  LocalFile file = Open(content);
  PipelinedSend send = Options(size);
  send.offset = size;
  FakeStream stream;
  ASSERT_TRUE(SendFilePipelined(file, Header(), stream, send).ok());
  ASSERT_EQ(stream.messages.size(), 1u);
  EXPECT_EQ(stream.messages[0].header().offset(), size);
  EXPECT_TRUE(stream.messages[0].data().empty());
  EXPECT_EQ(stream.messages[0].final_chunked_sha256(), ChunkedSha256Hex(content));
}

TEST_F(PipelinedUploadTest, SmallMessagesSplitPiecesAndAnAnnouncedDigestIsNotRepeated) {
  const int64_t size = 3 * kMiB + 100;
  const std::string content = RandomBytes(size, 17);
  LocalFile file = Open(content);
  PipelinedSend send = Options(size);
  send.message_bytes = 300000;
  send.send_final_digest = false;
  FakeStream stream;
  absl::StatusOr<PipelinedSendResult> sent =
      SendFilePipelined(file, Header(), stream, send);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_TRUE(Received(stream, content, 0, 300000) == content);
  EXPECT_EQ(stream.messages.size(), 3u * 4 + 1);  // 4 messages per MiB, then 100 bytes
  for (const v1::PutFileRequest& m : stream.messages) {
    EXPECT_TRUE(m.final_chunked_sha256().empty());
  }
  EXPECT_EQ(sent->chunked_sha256, ChunkedSha256Hex(content));
}

TEST_F(PipelinedUploadTest, AnEmptyFileWithAnAnnouncedDigestSendsTheHeaderOnly) {
  LocalFile file = Open("");
  PipelinedSend send = Options(0);
  send.send_final_digest = false;
  FakeStream stream;
  ASSERT_TRUE(SendFilePipelined(file, Header(), stream, send).ok());
  ASSERT_EQ(stream.messages.size(), 1u);
  EXPECT_TRUE(stream.messages[0].has_header());
  EXPECT_TRUE(stream.messages[0].final_chunked_sha256().empty());
}

// The server ends the call while the hashers are windows ahead: the call's status comes
// back, the hashers (blocked on a full ring) are stopped and joined, nothing hangs.
TEST_F(PipelinedUploadTest, AStreamEndedByTheServerReturnsItsStatusAndStopsTheHashers) {
  const int64_t size = 24 * kMiB;
  const std::string content = RandomBytes(size, 19);
  LocalFile file = Open(content);
  for (int fail_at : {0, 1, 5}) {
    PipelinedSend send = Options(size);
    send.threads = 4;
    FakeStream stream;
    stream.fail_at = fail_at;
    stream.finish_status = absl::FailedPreconditionError("upload u1 expired");
    absl::StatusOr<PipelinedSendResult> sent =
        SendFilePipelined(file, Header(), stream, send);
    EXPECT_EQ(sent.status().code(), absl::StatusCode::kFailedPrecondition) << fail_at;
    EXPECT_THAT(sent.status().message(), HasSubstr("expired"));
    EXPECT_TRUE(stream.finished);
    EXPECT_FALSE(stream.writes_done);  // the call was over: no half-close
    EXPECT_FALSE(stream.cancelled);
    EXPECT_EQ(static_cast<int>(stream.messages.size()), fail_at);
  }
}

TEST_F(PipelinedUploadTest, AFileThatShrankIsDataLossAndTheStreamIsCancelled) {
  const int64_t size = 9 * kMiB;
  LocalFile file = Open(RandomBytes(size, 23));
  fs::resize_file(path_, 5 * kMiB + 3);
  PipelinedSend send = Options(size);
  FakeStream stream;
  // Nothing past the end was sent, and never the final digest.
  ExpectDataLossWithin(SendFilePipelined(file, Header(), stream, send), stream, 5 * kMiB);
}

TEST_F(PipelinedUploadTest, AFindChunksErrorEndsTheSendAndCancelsTheStream) {
  const int64_t size = 6 * kMiB;
  LocalFile file = Open(RandomBytes(size, 29));
  int calls = 0;
  PipelinedSend send = Options(size);
  send.find_chunks =
      [&](const std::vector<std::string>& digests) -> absl::StatusOr<std::vector<bool>> {
    if (++calls == 2) return absl::UnavailableError("server went away");
    return std::vector<bool>(digests.size(), false);
  };
  FakeStream stream;
  absl::StatusOr<PipelinedSendResult> sent =
      SendFilePipelined(file, Header(), stream, send);
  EXPECT_EQ(sent.status().code(), absl::StatusCode::kUnavailable) << sent.status();
  EXPECT_TRUE(stream.cancelled);
  EXPECT_FALSE(stream.finished);
  EXPECT_EQ(calls, 2);
}

TEST_F(PipelinedUploadTest, OptionsOutOfRangeAreInvalidArgumentAndSendNothing) {
  LocalFile file = Open("abc");
  std::vector<PipelinedSend> bad(7, Options(3));
  bad[0].window_bytes = kMiB + kMiB / 2;
  bad[1].windows = 1;
  bad[2].threads = 0;
  bad[3].offset = 4;
  bad[4].message_bytes = 0;
  bad[5].existing_chunks_per_message = 0;
  bad[6].existing_chunks_per_message = kMaxExistingChunksPerMessage + 1;
  for (const PipelinedSend& send : bad) {
    FakeStream stream;
    absl::Status s = SendFilePipelined(file, Header(), stream, send).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_TRUE(stream.messages.empty());
  }
}

}  // namespace
}  // namespace mgreg::testing
