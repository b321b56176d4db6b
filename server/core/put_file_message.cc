#include "server/core/put_file_message.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/upload_limits.h"

namespace mgreg {

absl::Status AppendPutFileMessage(FileSink& sink, const v1::PutFileRequest& message) {
  const int names = message.existing_chunks_size();
  const int kinds = (message.data().empty() ? 0 : 1) +
                    (message.existing_chunk().empty() ? 0 : 1) + (names == 0 ? 0 : 1);
  if (kinds > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a PutFile message carries ", message.data().size(), " bytes of data, ",
        message.existing_chunk().empty() ? "no" : "an", " existing_chunk and ", names,
        " existing_chunks: it may carry only one of them; send the others in messages "
        "of their own, in file order"));
  }
  if (names > kMaxExistingChunksPerMessage) {
    return absl::InvalidArgumentError(
        absl::StrCat("a PutFile message names ", names,
                     " existing_chunks, more than the ", kMaxExistingChunksPerMessage,
                     " one message may; send them in messages of at most ",
                     kMaxExistingChunksPerMessage));
  }
  absl::Status appended;
  if (names > 0) {
    for (const std::string& sha256 : message.existing_chunks()) {
      appended = sink.AppendExistingChunk(sha256);
      if (!appended.ok()) break;
    }
  } else if (!message.existing_chunk().empty()) {
    appended = sink.AppendExistingChunk(message.existing_chunk());
  } else {
    appended = sink.Append(message.data());
  }
  // The digest applies to the bytes held with this message's.
  if (!appended.ok() || message.final_chunked_sha256().empty()) return appended;
  return sink.GiveFinalDigest(message.final_chunked_sha256());
}

}  // namespace mgreg
