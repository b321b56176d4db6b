// What one PutFile message after its header carries, applied to the file's sink: the
// message-level rules of the PutFile API in one place, for the gRPC reactor
// (server/put_file_streams.cc) and the upload fuzzer alike.
#ifndef MGREG_SERVER_CORE_PUT_FILE_MESSAGE_H_
#define MGREG_SERVER_CORE_PUT_FILE_MESSAGE_H_

#include "absl/status/status.h"
#include "mgreg/v1/registry.pb.h"
#include "server/core/upload_file_sink.h"

namespace mgreg {

// Appends `message`'s data, its existing_chunk, or each of its existing_chunks in
// order (FileSink::AppendExistingChunk, stopping at the first one refused, whose error
// names it; the chunks before it stay held), then gives its final_chunked_sha256.
// INVALID_ARGUMENT, before anything is appended, for a message that carries more than
// one of data, existing_chunk and existing_chunks, or names more than
// kMaxExistingChunksPerMessage (common/upload_limits.h) chunks. The header is the
// caller's (it opened the sink).
absl::Status AppendPutFileMessage(FileSink& sink, const v1::PutFileRequest& message);

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_PUT_FILE_MESSAGE_H_
