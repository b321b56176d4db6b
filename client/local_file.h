// Local file I/O for the client: reading and digesting files to upload, and writing
// downloads atomically (temp file, fsync, verify size and digest, rename, fsync the
// directory). Digests are common/file_digest.h's: the chunked SHA-256 a push announces,
// or the whole-file SHA-256 of files stored before chunked digests.
//
// File-system errors name the path and carry a code chosen by who must act, never
// UNAVAILABLE (which means the server cannot be reached): NOT_FOUND (ENOENT),
// PERMISSION_DENIED (EACCES, EPERM, EROFS), RESOURCE_EXHAUSTED (ENOSPC, EDQUOT, EMFILE,
// ENFILE, ENOMEM), INVALID_ARGUMENT (ENAMETOOLONG), ABORTED (EAGAIN, EBUSY: retry),
// FAILED_PRECONDITION (EIO and every other error).
#ifndef MGREG_CLIENT_LOCAL_FILE_H_
#define MGREG_CLIENT_LOCAL_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/file_digest.h"

namespace mgreg {

class HashingFileWriter;

// The status for local file-system error `err` (an errno value) met doing `what` to
// `path`, with the code chosen above and a message naming the path and what to do.
absl::Status LocalFileError(int err, absl::string_view what, absl::string_view path);

// A file opened for reading. Move-only.
class LocalFile {
 public:
  // NOT_FOUND if it does not exist, PERMISSION_DENIED if it cannot be read.
  static absl::StatusOr<LocalFile> OpenForRead(const std::string& path);
  LocalFile(LocalFile&& other) noexcept;
  LocalFile& operator=(LocalFile&& other) noexcept;
  ~LocalFile();

  int64_t size() const { return size_; }
  // Reads exactly `n` bytes at `offset` into `out`. DATA_LOSS if the file is shorter.
  // Several threads may read at once (pread), each into its own `out`.
  absl::Status ReadAt(int64_t offset, size_t n, std::string* out);

 private:
  LocalFile(std::string path, int fd, int64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  std::string path_;
  int fd_ = -1;
  int64_t size_ = 0;
};

struct FileDigest {
  int64_t size = 0;
  // The chunked SHA-256, hex.
  std::string chunked_sha256;
  // The raw SHA-256 of each of its kDigestPieceBytes (1 MiB) pieces: the chunk digests
  // too when the server cuts files into chunks of that size (its default).
  std::vector<std::string> pieces;
};
// Size and chunked SHA-256 of a local file: one read and one SHA-256 pass, its pieces
// hashed on `threads` (at least 1) threads at once.
absl::StatusOr<FileDigest> DigestFile(const std::string& path, int threads = 1);
// The whole-file SHA-256 (hex) of a local file, what sha256sum prints.
absl::StatusOr<std::string> Sha256OfFile(const std::string& path);

// SHA-256 (32 raw bytes each) of the consecutive `chunk_bytes`-sized pieces of a file
// (the last one shorter), as the server cuts files. With stride > 1 only every
// stride-th chunk is read and hashed (a sample); the others are left empty. `threads`
// (at least 1) hash different chunks at once: the pieces are independent, unlike a
// whole file's SHA-256, so a push's per-chunk pass can use every core.
absl::StatusOr<std::vector<std::string>> ChunkDigests(const std::string& path,
                                                      int64_t chunk_bytes,
                                                      int64_t stride = 1,
                                                      int threads = 1);

// The digest a restore verifies a file against: the chunked SHA-256 when the server gives
// one, else the whole-file SHA-256 (a file stored before chunked digests).
struct ExpectedDigest {
  DigestKind kind = DigestKind::kChunkedSha256;
  std::string hex;
};
ExpectedDigest ExpectedDigestOf(absl::string_view sha256,
                                absl::string_view chunked_sha256);

// True if `path` exists with exactly this size and digest.
bool FileMatches(const std::string& path, int64_t size, const ExpectedDigest& digest);

absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

// Creates `dir` (and parents) if needed and checks a file can be created in it.
// FAILED_PRECONDITION saying why otherwise.
absl::Status EnsureWritableDirectory(const std::string& dir);

// Writes a file under a temporary name beside `path`; Commit makes it appear at `path`
// only if its size and digest (of the kind given to Create) are the expected ones.
// Destroying an uncommitted writer removes the temporary file. The bytes go through a
// HashingFileWriter (client/hashing_file_writer.h): large O_DIRECT writes and the SHA-256
// on a thread of its own. Move-only.
class AtomicFileWriter {
 public:
  static absl::StatusOr<AtomicFileWriter> Create(const std::string& path,
                                                 DigestKind kind);
  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&&) = delete;
  ~AtomicFileWriter();

  // Takes a copy of `data`; the disk works while more bytes arrive, so Commit's fsync
  // only waits for the tail. An error (RESOURCE_EXHAUSTED if the disk is full) may be
  // one of an earlier Append's bytes; it discards the file.
  absl::Status Append(absl::string_view data);
  // fsyncs, checks size and digest (DATA_LOSS naming the file and both digests on a
  // mismatch, the temporary file is removed), renames into place and fsyncs the
  // directory.
  absl::Status Commit(int64_t expected_size, absl::string_view expected_digest_hex);

 private:
  AtomicFileWriter(std::string path, std::string temp_path, int fd, DigestKind kind);
  void Discard();

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  DigestKind kind_;
  std::unique_ptr<HashingFileWriter> sink_;  // writes into fd_
};

}  // namespace mgreg

#endif  // MGREG_CLIENT_LOCAL_FILE_H_
