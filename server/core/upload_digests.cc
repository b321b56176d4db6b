#include "server/core/upload_digests.h"

namespace mgreg {

UploadDigests::UploadDigests(bool whole, size_t chunk_bytes)
    : whole_(whole), by_piece_(static_cast<int64_t>(chunk_bytes) == kDigestPieceBytes) {}

void UploadDigests::AddChunk(const storage::ChunkRef& ref, absl::string_view bytes) {
  if (whole_) sha256_.Update(bytes);
  if (!by_piece_) {
    chunked_.Update(bytes);
  } else if (!chunked_.AddPiece(ref.sha256(), ref.size())) {
    broken_ = true;
  }
}

std::string UploadDigests::chunked_hex() const {
  return broken_ ? std::string() : chunked_.HexDigest();
}

std::string UploadDigests::whole_hex() const {
  return whole_ ? sha256_.HexDigest() : std::string();
}

}  // namespace mgreg
