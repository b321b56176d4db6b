// The chunked SHA-256 of a file: the digest mgreg records for every file pushed by a
// current client, derived from per-piece digests so that one SHA-256 pass over the bytes
// serves both the chunk addresses and the file digest.
//
// Definition (written once here, once in python/src/mgreg/_digest.py; both are tested
// against the same vectors): cut the file into consecutive pieces of kDigestPieceBytes
// (1 MiB) bytes, the last piece shorter; the digest is the SHA-256 of the concatenation
// of the pieces' raw 32-byte SHA-256 digests, in lower-case hex. An empty file has no
// pieces, so its digest is the SHA-256 of no bytes. The piece size is fixed, whatever
// chunk size a server cuts files into. By hand (coreutils + python3, see README):
//   split -b 1048576 --filter='sha256sum | cut -c1-64' FILE |
//     python3 -c 'import
//     sys,hashlib;print(hashlib.sha256(bytes.fromhex(sys.stdin.read().replace(chr(10),""))).hexdigest())'
#ifndef MGREG_COMMON_FILE_DIGEST_H_
#define MGREG_COMMON_FILE_DIGEST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/sha256.h"

namespace mgreg {

// The piece size of the chunked SHA-256: 1 MiB.
inline constexpr int64_t kDigestPieceBytes = int64_t{1} << 20;

// Computes the chunked SHA-256 over bytes given in any split, or over whole pieces given
// by their digest (a caller that has hashed the piece already). Copyable, so a caller
// can keep the state at a point and continue from it later. Not thread-safe.
class ChunkedSha256 {
 public:
  // Appends bytes.
  void Update(absl::string_view data);
  // Appends a piece by its raw 32-byte SHA-256 instead of its bytes. Only at a piece
  // boundary (at_piece_boundary()); `piece_bytes` is kDigestPieceBytes except for the
  // file's last piece. Returns false (and changes nothing) otherwise.
  bool AddPiece(absl::string_view sha256_raw, int64_t piece_bytes);
  // True when the bytes given so far are whole pieces (also before any).
  bool at_piece_boundary() const { return piece_fill_ == 0 && !last_piece_added_; }
  // Bytes given so far (by Update or AddPiece).
  int64_t bytes() const { return bytes_; }
  // The digest of everything given so far (a shorter trailing piece included), lower-case
  // hex; the object can keep being updated.
  std::string HexDigest() const;

 private:
  Sha256 outer_;  // over the digests of the whole pieces
  Sha256 piece_;  // over the bytes of the current, unfinished piece
  int64_t piece_fill_ = 0;
  int64_t bytes_ = 0;
  // A piece shorter than kDigestPieceBytes was added by digest: it was the last.
  bool last_piece_added_ = false;
};

// Which digest of a file: the whole-file SHA-256 (what sha256sum prints) or the chunked
// SHA-256 above.
enum class DigestKind { kSha256, kChunkedSha256 };
// "SHA-256" or "chunked SHA-256", for messages.
const char* DigestKindName(DigestKind kind);

// One digest of either kind over bytes given in any split. Copyable; not thread-safe.
class FileHasher {
 public:
  explicit FileHasher(DigestKind kind) : kind_(kind) {}
  DigestKind kind() const { return kind_; }
  void Update(absl::string_view data) {
    if (kind_ == DigestKind::kSha256) {
      whole_.Update(data);
    } else {
      chunked_.Update(data);
    }
  }
  // Lower-case hex of everything given so far.
  std::string HexDigest() const {
    return kind_ == DigestKind::kSha256 ? whole_.HexDigest() : chunked_.HexDigest();
  }

 private:
  DigestKind kind_;
  Sha256 whole_;
  ChunkedSha256 chunked_;
};

// The chunked SHA-256 (hex) of `data`.
std::string ChunkedSha256Hex(absl::string_view data);
// The chunked SHA-256 (hex) of a file whose pieces' raw digests are `piece_digests`, in
// order (the client's ChunkDigests at kDigestPieceBytes).
std::string ChunkedSha256FromPieces(const std::vector<std::string>& piece_digests);

}  // namespace mgreg

#endif  // MGREG_COMMON_FILE_DIGEST_H_
