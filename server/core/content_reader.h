// The one reader of chunked content: a blob the store holds, or the chunks an upload
// staged for a file. Reads it whole, by byte range, or chunk by chunk from an offset
// (for streams), and checks every chunk it reads against the size its reference gives.
//
// Thread safety: one thread at a time. The store must outlive the reader.
#ifndef MGREG_SERVER_CORE_CONTENT_READER_H_
#define MGREG_SERVER_CORE_CONTENT_READER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mgreg/storage/records.pb.h"
#include "storage/store.h"

namespace mgreg {

class ContentReader {
 public:
  // Over `chunks` in order. `what` names the content in errors ("file 'index'").
  ContentReader(Store* store, std::vector<storage::ChunkRef> chunks, std::string what);
  // Over the stored blob `sha256_hex`: NOT_FOUND if the store has no such blob, or the
  // store's error.
  static absl::StatusOr<ContentReader> ForBlob(Store* store, absl::string_view sha256_hex,
                                               std::string what);

  // Bytes of the content (the sum of its chunks' sizes).
  int64_t size() const { return size_; }

  // The whole content. DATA_LOSS if a chunk has another size than its reference says;
  // the store's error if a chunk cannot be read.
  absl::StatusOr<std::string> ReadAll();
  // Bytes [begin, begin + length), fewer where the range passes the end. Keeps the last
  // chunk read, so ranges read in offset order read each chunk once. Errors as ReadAll.
  absl::StatusOr<std::string> ReadRange(int64_t begin, int64_t length);

  // Streaming: moves the position to `offset` (0 <= offset <= size()).
  void Seek(int64_t offset);
  int64_t position() const { return position_; }
  bool at_end() const { return position_ >= size_; }
  // The bytes from the position to the end of its chunk, and moves past them (at most
  // one chunk per call). Requires !at_end(). Errors as ReadAll.
  absl::StatusOr<std::string> ReadToChunkEnd();

 private:
  // The chunk holding byte `offset` (offset < size()).
  size_t ChunkAt(int64_t offset) const;
  // Chunk `i`, checked against its reference's size.
  absl::StatusOr<std::string> ReadChunk(size_t i);

  Store* store_;
  std::vector<storage::ChunkRef> chunks_;
  std::string what_;
  // Offset of each chunk in the content.
  std::vector<int64_t> starts_;
  int64_t size_ = 0;
  int64_t position_ = 0;
  // The last chunk ReadRange read.
  size_t cached_index_ = static_cast<size_t>(-1);
  std::string cached_;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_CONTENT_READER_H_
