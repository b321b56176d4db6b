// Writing one file of an open upload (PutFile): the bytes are cut into chunks at fixed
// file offsets and staged, the file's digests verified when its last byte arrives, and
// the file's held bytes and writer lease saved in its session (server/core/uploads.h).
//
// A file's digests: those BeginUpload announced, and those its writers give (the
// PutFile header, for a file announced without one; final_chunked_sha256, with or
// after the last bytes). A digest given must agree with one the file has of that kind.
// The writers' digests go with the bytes they describe: they are forgotten when the
// server drops the bytes (they did not match) or a writer starts the file over at
// offset 0. A file with every byte held but no digest stays incomplete (held = size)
// until a writer gives one; the session store keeps the file's digests, or their
// absence, like its held bytes.
#ifndef MGREG_SERVER_CORE_UPLOAD_FILE_SINK_H_
#define MGREG_SERVER_CORE_UPLOAD_FILE_SINK_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "mgreg/v1/registry.pb.h"
#include "server/core/uploads.h"
#include "storage/store.h"

namespace mgreg {

// Writes one file of an open upload, message by message (PutFile).
class FileSink {
 public:
  virtual ~FileSink() = default;
  // Appends the next bytes. DATA_LOSS if a digest of the file (chunked or whole-file
  // SHA-256) does not match once all bytes are there (the file restarts from 0);
  // INVALID_ARGUMENT if more bytes arrive than announced. After an error the sink is
  // unusable.
  virtual absl::Status Append(absl::string_view data) = 0;
  // True when appending `bytes` more (at most two chunks) would only hash and stage
  // them in a local store (not Store::remote; not reach the file's end, where Append
  // verifies the file and makes its chunks durable; nor save the file's state): work
  // short enough for one of gRPC's callback threads, unless the store stalls the write.
  virtual bool QuickAppend(size_t bytes) const = 0;
  // Appends a chunk the store already holds (SHA-256, 32 raw bytes) as the next
  // chunk_bytes of the file (fewer at its end), without its bytes crossing the network
  // (nor, when UploadDigests need no bytes, being read back from the store).
  // INVALID_ARGUMENT if not at a chunk boundary or the chunk's size does not fit;
  // NOT_FOUND if the store does not hold the chunk; DATA_LOSS as Append.
  virtual absl::Status AppendExistingChunk(absl::string_view sha256) = 0;
  // The file's chunked SHA-256 (hex), from its writer (final_chunked_sha256), given
  // after the message's bytes were appended; verified now if every byte is held.
  // INVALID_ARGUMENT if it is not 64 lower-case hex (or, for an empty file, not that of
  // no bytes), or differs from the chunked digest the file has; DATA_LOSS as Append.
  virtual absl::Status GiveFinalDigest(const std::string& chunked_sha256) = 0;
  // The stream ended. OK with complete = false and held_bytes = size if every byte is
  // held but no digest is known yet. DATA_LOSS if bytes are missing (its whole chunks
  // are kept: a new stream resumes at the held bytes the message names).
  virtual absl::StatusOr<v1::PutFileResponse> Finish() = 0;
};

// Digests a writer gives in its PutFile header (hex, as FileInfo; empty: not given).
struct GivenDigests {
  std::string sha256;
  std::string chunked_sha256;
};

// Opens a sink for `name` of `session`, starting at `offset` (0 restarts the file;
// otherwise it must equal the held bytes), and takes the file's writer lease for
// `lease` (renewed with every save, and every lease/4 while bytes arrive). The file's
// new chunks are saved in the store every 32 chunks (or an eighth of the file's chunks
// if more), at least every second, when the digests are checked, and when the stream
// ends; in between they are ahead of the store (UploadFileState::ahead_of_store): a
// replica that takes the file over after this server died resumes at the last save.
// INVALID_ARGUMENT if the file is not in the manifest, or `given` (the header's
// digests) is malformed or differs from a digest the file has; FAILED_PRECONDITION if
// another stream writes it, the upload is closed, or the offset is not 0 or the held
// bytes. `given` becomes the file's digest when BeginUpload announced it without one.
// `store` (for existing chunks) must outlive the sink. `may_reuse_chunk` says whether the
// writer may name a chunk (32-byte SHA-256) instead of sending it; a chunk it may not
// reuse is answered as one the store does not hold.
absl::StatusOr<std::unique_ptr<FileSink>> OpenUploadFileSink(
    std::shared_ptr<UploadSession> session, const std::string& name, int64_t offset,
    size_t chunk_bytes, Store* store, absl::Duration lease,
    std::function<absl::StatusOr<bool>(const std::string& sha256_raw)> may_reuse_chunk,
    GivenDigests given = {});

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_UPLOAD_FILE_SINK_H_
