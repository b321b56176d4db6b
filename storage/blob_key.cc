#include "storage/blob_key.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/file_digest.h"
#include "common/sha256.h"

namespace mgreg {
namespace {

constexpr absl::string_view kChunkedPrefix = "chunked-";

std::string KeyOf(const std::string& sha256, const std::string& chunked) {
  if (!sha256.empty()) return sha256;
  if (!chunked.empty()) return absl::StrCat(kChunkedPrefix, chunked);
  return "";
}

}  // namespace

std::string BlobKey(const storage::FileRecord& file) {
  return KeyOf(file.sha256(), file.chunked_sha256());
}

std::string BlobKey(const storage::BlobRecord& blob) {
  return KeyOf(blob.sha256(), blob.chunked_sha256());
}

bool IsBlobKey(absl::string_view key) {
  if (absl::ConsumePrefix(&key, kChunkedPrefix)) return IsSha256Hex(key);
  return IsSha256Hex(key);
}

std::optional<std::string> BlobChunkedSha256(const storage::BlobRecord& blob) {
  if (!blob.chunked_sha256().empty()) return blob.chunked_sha256();
  std::vector<std::string> pieces;
  pieces.reserve(static_cast<size_t>(blob.chunks_size()));
  for (int i = 0; i < blob.chunks_size(); ++i) {
    const storage::ChunkRef& c = blob.chunks(i);
    const bool last = i + 1 == blob.chunks_size();
    if (static_cast<int64_t>(c.size()) != kDigestPieceBytes &&
        !(last && static_cast<int64_t>(c.size()) < kDigestPieceBytes)) {
      return std::nullopt;
    }
    pieces.push_back(c.sha256());
  }
  return ChunkedSha256FromPieces(pieces);
}

Sameness CompareFileDigests(const storage::FileRecord& a, const storage::FileRecord& b) {
  if (a.size() != b.size()) return Sameness::kDifferent;
  bool compared = false;
  if (!a.sha256().empty() && !b.sha256().empty()) {
    if (a.sha256() != b.sha256()) return Sameness::kDifferent;
    compared = true;
  }
  if (!a.chunked_sha256().empty() && !b.chunked_sha256().empty()) {
    if (a.chunked_sha256() != b.chunked_sha256()) return Sameness::kDifferent;
    compared = true;
  }
  return compared ? Sameness::kSame : Sameness::kUnknown;
}

}  // namespace mgreg
