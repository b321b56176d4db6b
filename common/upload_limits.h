// Limits of the upload API that the server enforces and the clients keep to.
#ifndef MGREG_COMMON_UPLOAD_LIMITS_H_
#define MGREG_COMMON_UPLOAD_LIMITS_H_

namespace mgreg {

// Most held chunks one PutFile message may name (PutFileRequest.existing_chunks):
// 1024 names are ~34 KiB of message, standing for 1 GiB of 1 MiB chunks.
inline constexpr int kMaxExistingChunksPerMessage = 1024;

}  // namespace mgreg

#endif  // MGREG_COMMON_UPLOAD_LIMITS_H_
