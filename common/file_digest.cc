#include "common/file_digest.h"

#include <algorithm>
#include <array>

namespace mgreg {

void ChunkedSha256::Update(absl::string_view data) {
  while (!data.empty()) {
    const size_t n = static_cast<size_t>(std::min<int64_t>(
        kDigestPieceBytes - piece_fill_, static_cast<int64_t>(data.size())));
    piece_.Update(data.substr(0, n));
    piece_fill_ += static_cast<int64_t>(n);
    bytes_ += static_cast<int64_t>(n);
    data.remove_prefix(n);
    if (piece_fill_ == kDigestPieceBytes) {
      const std::array<uint8_t, 32> d = piece_.Digest();
      outer_.Update(absl::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
      piece_ = Sha256();
      piece_fill_ = 0;
    }
  }
}

bool ChunkedSha256::AddPiece(absl::string_view sha256_raw, int64_t piece_bytes) {
  if (!at_piece_boundary() || sha256_raw.size() != 32 || piece_bytes <= 0 ||
      piece_bytes > kDigestPieceBytes) {
    return false;
  }
  outer_.Update(sha256_raw);
  bytes_ += piece_bytes;
  last_piece_added_ = piece_bytes < kDigestPieceBytes;
  return true;
}

std::string ChunkedSha256::HexDigest() const {
  if (piece_fill_ == 0) return outer_.HexDigest();
  Sha256 outer = outer_;
  const std::array<uint8_t, 32> d = piece_.Digest();
  outer.Update(absl::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
  return outer.HexDigest();
}

const char* DigestKindName(DigestKind kind) {
  return kind == DigestKind::kSha256 ? "SHA-256" : "chunked SHA-256";
}

std::string ChunkedSha256Hex(absl::string_view data) {
  ChunkedSha256 h;
  h.Update(data);
  return h.HexDigest();
}

std::string ChunkedSha256FromPieces(const std::vector<std::string>& piece_digests) {
  Sha256 outer;
  for (const std::string& d : piece_digests) outer.Update(d);
  return outer.HexDigest();
}

}  // namespace mgreg
