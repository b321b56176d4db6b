// HashingFileWriter: writes the bytes of a new file, in order, and computes their digest
// (whole-file or chunked SHA-256, common/file_digest.h) on the way; what AtomicFileWriter
// (client/local_file.h) writes restores and downloads with.
//
// Where the time of a restore went (bench/RESULTS.md, issue 17): buffered write()s into
// the page cache cost the client 1.1-2.3 CPU-s per GiB in the kernel, copying into
// freshly allocated page-cache pages. So a sink copies the bytes into a few reused,
// aligned buffers of kBufferBytes and writes each full buffer with one O_DIRECT write
// (no page-cache copy); a file system that refuses O_DIRECT, and the unaligned tail of
// a file, are written through the page cache instead (with the write-back started every
// few MiB), with the same result on disk. Hashing and writing run on a thread of the
// sink's own, started when the first buffer fills, so a restore receives the next bytes
// while the last ones are hashed and on their way to the disk. Durability is the
// caller's: it fsyncs the file after Finish.
//
// Thread safety: one thread calls Append and Finish; the sink's own thread is internal.
#ifndef MGREG_CLIENT_HASHING_FILE_WRITER_H_
#define MGREG_CLIENT_HASHING_FILE_WRITER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/file_digest.h"

namespace mgreg {

class HashingFileWriter {
 public:
  // Bytes of one aligned buffer (one O_DIRECT write), and how many a sink holds at most.
  static constexpr size_t kBufferBytes = 8u << 20;
  static constexpr int kBuffers = 4;

  // Writes into `fd`, an empty regular file open for writing, from offset 0; the sink
  // neither closes it nor fsyncs it. `path` names the file in errors; `kind` is the
  // digest Finish returns.
  HashingFileWriter(int fd, std::string path, DigestKind kind);
  // Stops the sink's thread (bytes not yet written are dropped).
  ~HashingFileWriter();
  HashingFileWriter(const HashingFileWriter&) = delete;
  HashingFileWriter& operator=(const HashingFileWriter&) = delete;

  // Takes a copy of `data`. Returns the error of an earlier write, if one failed (see
  // local_file.h for the codes; RESOURCE_EXHAUSTED when the disk is full); after an
  // error every call returns it.
  absl::Status Append(absl::string_view data);
  // Writes what is left and waits for every write. Returns the lower-case hex digest (of
  // the constructor's kind) of every byte appended, or the first write error. Call once.
  absl::StatusOr<std::string> Finish();

  // Bytes appended so far.
  int64_t appended() const { return appended_; }

 private:
  struct Shared;
  std::unique_ptr<Shared> shared_;
  int64_t appended_ = 0;
};

}  // namespace mgreg

#endif  // MGREG_CLIENT_HASHING_FILE_WRITER_H_
