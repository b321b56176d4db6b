// How a file's content is named in the store, and when two file records hold the same
// content, with records of both digest kinds about (common/file_digest.h):
//  - a file record carries its whole-file SHA-256 (`sha256`, records written before
//    chunked digests, or a writer that gave it), its chunked SHA-256 (`chunked_sha256`,
//    every file stored since), or both;
//  - its BlobRecord is stored under BlobKey: the whole-file digest when the record has
//    one, else "chunked-" and the chunked digest. The prefix keeps the two kinds apart:
//    a chunked digest is the plain SHA-256 of other bytes (the piece digests), so
//    without it one file's whole-file key could be made to equal another's chunked one.
#ifndef MGREG_STORAGE_BLOB_KEY_H_
#define MGREG_STORAGE_BLOB_KEY_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "mgreg/storage/records.pb.h"

namespace mgreg {

// The key of the blob holding a file (or of the blob itself). Empty when the record has
// no digest (an invalid record).
std::string BlobKey(const storage::FileRecord& file);
std::string BlobKey(const storage::BlobRecord& blob);
// True if `key` has BlobKey's form: 64 lower-case hex, or "chunked-" and 64 of them.
bool IsBlobKey(absl::string_view key);

// The chunked SHA-256 of a blob: its record's, else derived from its chunk list without
// reading a byte when its chunks are the digest's 1 MiB pieces (the server's default
// chunk size); nullopt otherwise (chunks of another size: the bytes would be needed).
std::optional<std::string> BlobChunkedSha256(const storage::BlobRecord& blob);

// Whether two records of a file name the same content, by the digests both carry.
enum class Sameness { kSame, kDifferent, kUnknown };
// kSame/kDifferent when the sizes differ or a digest kind both have decides; kUnknown
// when they share no digest kind (an old record with only sha256 against a new one
// with only chunked_sha256): compare the blobs then (BlobChunkedSha256).
Sameness CompareFileDigests(const storage::FileRecord& a, const storage::FileRecord& b);

}  // namespace mgreg

#endif  // MGREG_STORAGE_BLOB_KEY_H_
