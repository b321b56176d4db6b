#include "server/core/content_reader.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace mgreg {

ContentReader::ContentReader(Store* store, std::vector<storage::ChunkRef> chunks,
                             std::string what)
    : store_(store), chunks_(std::move(chunks)), what_(std::move(what)) {
  starts_.reserve(chunks_.size());
  for (const storage::ChunkRef& ref : chunks_) {
    starts_.push_back(size_);
    size_ += static_cast<int64_t>(ref.size());
  }
}

absl::StatusOr<ContentReader> ContentReader::ForBlob(Store* store,
                                                     absl::string_view sha256_hex,
                                                     std::string what) {
  ASSIGN_OR_RETURN(storage::BlobRecord blob, store->GetBlob(sha256_hex));
  return ContentReader(
      store, std::vector<storage::ChunkRef>(blob.chunks().begin(), blob.chunks().end()),
      std::move(what));
}

size_t ContentReader::ChunkAt(int64_t offset) const {
  const auto after = std::upper_bound(starts_.begin(), starts_.end(), offset);
  return static_cast<size_t>(after - starts_.begin()) - 1;
}

absl::StatusOr<std::string> ContentReader::ReadChunk(size_t i) {
  const storage::ChunkRef& ref = chunks_[i];
  ASSIGN_OR_RETURN(std::string data, store_->ReadChunk(ref));
  if (data.size() != ref.size()) {
    return absl::DataLossError(
        absl::StrCat("a chunk of ", what_, " has the wrong size in the store"));
  }
  return data;
}

absl::StatusOr<std::string> ContentReader::ReadAll() {
  std::string out;
  out.reserve(static_cast<size_t>(size_));
  for (size_t i = 0; i < chunks_.size(); ++i) {
    ASSIGN_OR_RETURN(std::string data, ReadChunk(i));
    out += data;
  }
  return out;
}

absl::StatusOr<std::string> ContentReader::ReadRange(int64_t begin, int64_t length) {
  std::string out;
  const int64_t end = std::min(size_, begin + length);
  if (begin < 0 || begin >= end) return out;
  out.reserve(static_cast<size_t>(end - begin));
  for (size_t i = ChunkAt(begin); i < chunks_.size() && starts_[i] < end; ++i) {
    if (cached_index_ != i) {
      ASSIGN_OR_RETURN(cached_, ReadChunk(i));
      cached_index_ = i;
    }
    const int64_t lo = std::max(begin, starts_[i]) - starts_[i];
    const int64_t hi =
        std::min<int64_t>(end, starts_[i] + static_cast<int64_t>(cached_.size())) -
        starts_[i];
    if (hi > lo)
      out.append(cached_, static_cast<size_t>(lo), static_cast<size_t>(hi - lo));
  }
  return out;
}

void ContentReader::Seek(int64_t offset) {
  position_ = std::clamp<int64_t>(offset, 0, size_);
}

absl::StatusOr<std::string> ContentReader::ReadToChunkEnd() {
  const size_t i = ChunkAt(position_);
  ASSIGN_OR_RETURN(std::string data, ReadChunk(i));
  const int64_t skip = position_ - starts_[i];
  if (skip > 0) data.erase(0, static_cast<size_t>(skip));
  position_ = starts_[i] + static_cast<int64_t>(chunks_[i].size());
  return data;
}

}  // namespace mgreg
