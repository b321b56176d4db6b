// The digests an upload verifies a file's bytes against, fed chunk by chunk as the
// server stages them (server/core/upload_file_sink.cc).
#ifndef MGREG_SERVER_CORE_UPLOAD_DIGESTS_H_
#define MGREG_SERVER_CORE_UPLOAD_DIGESTS_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"
#include "common/file_digest.h"
#include "common/sha256.h"
#include "mgreg/storage/records.pb.h"

namespace mgreg {

// The chunked SHA-256 (common/file_digest.h) of a file's chunks so far, always; and its
// whole-file SHA-256 only when asked for (the writer gave one to verify). With chunks of
// the chunked digest's piece size (the server's default 1 MiB) the chunked digest comes
// from the chunk digests the server computes anyway: no pass over the bytes, and a
// chunk the store already holds need not be read back. Copyable, so a file's state at
// its held bytes survives the stream that wrote them (resume). Not thread-safe.
class UploadDigests {
 public:
  // No chunk_bytes yet: needs_bytes(); callers start from the constructor below.
  UploadDigests() = default;
  // For chunks of `chunk_bytes` (the last shorter); `whole` also computes the
  // whole-file SHA-256.
  UploadDigests(bool whole, size_t chunk_bytes);

  // True when AddChunk needs the chunk's bytes: the whole-file digest is asked for, or
  // the chunks are not the chunked digest's pieces.
  bool needs_bytes() const { return whole_ || !by_piece_; }
  // True if the whole-file SHA-256 is computed.
  bool whole() const { return whole_; }
  // Feeds the file's next chunk: `ref` (its SHA-256 and size) and, when needs_bytes(),
  // its bytes (ignored otherwise).
  void AddChunk(const storage::ChunkRef& ref, absl::string_view bytes);

  // The chunked SHA-256 (hex) of the chunks fed so far; empty if they were not the
  // pieces a chunked digest needs (a short chunk before the end), which no announced
  // digest matches.
  std::string chunked_hex() const;
  // The whole-file SHA-256 (hex); empty unless `whole`.
  std::string whole_hex() const;

 private:
  bool whole_ = false;
  bool by_piece_ = false;
  bool broken_ = false;
  Sha256 sha256_;
  ChunkedSha256 chunked_;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_UPLOAD_DIGESTS_H_
