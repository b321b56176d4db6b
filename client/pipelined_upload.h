// Sending one local file over a PutFile stream while it is read and hashed: the push's
// one pass over the bytes (issue 17).
//
// Reader/hasher threads read the file in 1 MiB pieces (kDigestPieceBytes, the chunked
// SHA-256's pieces) into a bounded ring of windows and hash each piece (raw SHA-256),
// two consecutive pieces at a time on one thread (Sha256RawPair).
// The calling thread is the sender: as soon as every piece of the next window is
// hashed, it asks which of them the server holds (FindChunks, when deduplication is on),
// names those (existing_chunk, or consecutive ones together in existing_chunks when the
// server takes them) and writes the window's bytes, already in memory, for the rest,
// then hands the window back to the readers. The first bytes go out once the first
// window is hashed, and the hashers work up to `windows - 1` windows ahead of the sender.
// The last message carries the file's chunked SHA-256 computed from the pieces
// (PutFileRequest.final_chunked_sha256) when the file was announced without a digest.
//
// Memory: at most `windows` × `window_bytes` of file bytes (3 × 16 MiB by default),
// whatever the file's size.
#ifndef MGREG_CLIENT_PIPELINED_UPLOAD_H_
#define MGREG_CLIENT_PIPELINED_UPLOAD_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/client.h"
#include "client/local_file.h"
#include "mgreg/v1/registry.pb.h"

namespace mgreg {

// The file bytes one window holds, and how many windows exist at once.
inline constexpr int64_t kPipelineWindowBytes = int64_t{16} << 20;
inline constexpr int kPipelineWindows = 3;

// One PutFile call as the sender sees it: gRPC's ClientWriter in the client, a fake in
// tests. Used by one thread.
class PutFileStream {
 public:
  virtual ~PutFileStream() = default;
  // Sends one message. False when the call has ended (the server refused or failed):
  // Finish then says why.
  virtual bool Write(const v1::PutFileRequest& message) = 0;
  // Ends the call and returns its outcome. `writes_done`: the sender wrote everything
  // and half-closes first (false after a failed Write: the call is already over).
  virtual absl::StatusOr<v1::PutFileResponse> Finish(bool writes_done) = 0;
  // Abandons the call (a local error): the server sees it cancelled and keeps the bytes
  // it received, as a resume point. Finish is not called afterwards.
  virtual void Cancel() = 0;
};

// Which of `sha256_raw` (32-byte SHA-256 digests of chunks) the server holds, in order:
// a FindChunks call. Its error ends the send.
using FindChunksFn = std::function<absl::StatusOr<std::vector<bool>>(
    const std::vector<std::string>& sha256_raw)>;

struct PipelinedSend {
  // The file's announced size: bytes [0, size) are read and hashed (the file must hold
  // at least this many), [offset, size) are sent. `offset` is what the server already
  // holds (a resumed upload): hashed for the digest, not sent again.
  int64_t size = 0;
  int64_t offset = 0;
  // Give final_chunked_sha256 in the last message (a file announced without a digest).
  bool send_final_digest = false;
  // Reader/hasher threads (at least 1).
  int threads = 1;
  // A multiple of kDigestPieceBytes, and at least 2 windows.
  int64_t window_bytes = kPipelineWindowBytes;
  int windows = kPipelineWindows;
  // Largest data message: whole pieces are gathered into one while another fits (the
  // server hashes two chunks of one message together); a piece larger than a message,
  // or sent from inside (a resume), goes in messages of its own.
  size_t message_bytes = 2u << 20;
  // When set, the server's chunks are the 1 MiB pieces: pieces at or after `offset` are
  // asked about window by window (files of one piece are not) and those held are named
  // instead of sent. Unset: every byte is sent.
  FindChunksFn find_chunks;
  // Held pieces named per message: 1 names each in a message of its own
  // (existing_chunk, which every server takes); more gathers consecutive held pieces of
  // a window into one message of up to this many (existing_chunks, for a server whose
  // Upload says accepts_existing_chunks). At most kMaxExistingChunksPerMessage.
  int existing_chunks_per_message = 1;
  // Called after each message with (bytes of the file the server has or was sent, size).
  ProgressFn progress;
  // When set, bytes_sent and bytes_deduplicated_chunks grow by what this call sent and
  // named.
  PushStats* stats = nullptr;
};

struct PipelinedSendResult {
  v1::PutFileResponse response;
  // The chunked SHA-256 (hex) of the file's [0, size) bytes as read.
  std::string chunked_sha256;
};

// Sends `file` over `stream`, the first message carrying `header` (its offset is set to
// send.offset). Returns the call's response once the server accepted every message.
// Every thread it starts has ended when it returns, whatever happened.
// Returns INVALID_ARGUMENT for options outside the limits above (nothing is sent);
// the read's error (DATA_LOSS if the file is shorter than send.size, the local file
// errors of client/local_file.h) and FindChunks's error, after cancelling the stream;
// the call's status from Finish when the server ended it.
absl::StatusOr<PipelinedSendResult> SendFilePipelined(
    LocalFile& file, const v1::PutFileRequest::Header& header, PutFileStream& stream,
    const PipelinedSend& send);

}  // namespace mgreg

#endif  // MGREG_CLIENT_PIPELINED_UPLOAD_H_
