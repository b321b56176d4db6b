#include "client/hashing_file_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/local_file.h"
#include "common/file_digest.h"

namespace mgreg {
namespace {

// O_DIRECT needs the buffer's address, the file offset and the length aligned to the
// device's logical block; 4 KiB covers the devices in use.
constexpr size_t kAlign = 4096;
// Written through the page cache, the write-back of each run of this many bytes is
// started at once, so that fsync only waits for the tail.
constexpr int64_t kWritebackBytes = 8 << 20;

struct FreeAligned {
  void operator()(char* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<char, FreeAligned>;

struct Filled {
  Buffer buffer;
  size_t size = 0;
};

}  // namespace

struct HashingFileWriter::Shared {
  Shared(int fd_in, std::string path_in, DigestKind kind)
      : fd(fd_in), path(std::move(path_in)), hasher(kind) {
    const int flags = ::fcntl(fd, F_GETFL);
    direct = flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_DIRECT) == 0;
  }

  // Writes `n` bytes at the end of what was written.
  absl::Status Write(const char* p, size_t n) {
    if (direct && n % kAlign != 0) StopDirect();  // the tail of the file
    while (n > 0) {
      const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EINVAL && direct) {  // this file system refuses O_DIRECT writes
          StopDirect();
          continue;
        }
        return LocalFileError(errno, "cannot write", path);
      }
      p += w;
      n -= static_cast<size_t>(w);
      offset += w;
      if (direct && static_cast<size_t>(w) % kAlign != 0) StopDirect();
    }
    if (!direct && offset - writeback_from >= kWritebackBytes) {
      // Asynchronous: only queues the pages for writing. The caller's fsync stays the
      // durability point, so a failure here changes nothing and is not reported.
      ::sync_file_range(fd, writeback_from, offset - writeback_from,
                        SYNC_FILE_RANGE_WRITE);
      writeback_from = offset;
    }
    return absl::OkStatus();
  }

  void StopDirect() {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_DIRECT);
    direct = false;
    writeback_from = offset;
  }

  bool HashWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return !to_hash.empty() || closing;
  }
  bool WriteWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return !to_write.empty() || hashed_all;
  }
  bool HasFreeBuffer() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !free.empty(); }

  // The hashing thread: hashes the filled buffers in order and hands them on to the
  // writing thread, until closed. The disk writes one buffer while the next is hashed.
  void RunHash() {
    for (;;) {
      Filled item;
      {
        absl::MutexLock lock(&mu);
        while (!HashWork()) changed.Wait(&mu);
        if (to_hash.empty()) {
          hashed_all = true;
          changed.SignalAll();
          return;
        }
        item = std::move(to_hash.front());
        to_hash.pop_front();
      }
      hasher.Update(absl::string_view(item.buffer.get(), item.size));
      absl::MutexLock lock(&mu);
      to_write.push_back(std::move(item));
      changed.SignalAll();
    }
  }

  // The writing thread: writes the hashed buffers in order until the hashing ended.
  void RunWrite() {
    for (;;) {
      Filled item;
      {
        absl::MutexLock lock(&mu);
        while (!WriteWork()) changed.Wait(&mu);
        if (to_write.empty()) return;
        item = std::move(to_write.front());
        to_write.pop_front();
        if (!error.ok()) {  // after an error, buffers are only given back
          free.push_back(std::move(item.buffer));
          changed.SignalAll();
          continue;
        }
      }
      absl::Status status = Write(item.buffer.get(), item.size);
      absl::MutexLock lock(&mu);
      if (!status.ok() && error.ok()) error = std::move(status);
      free.push_back(std::move(item.buffer));
      changed.SignalAll();
    }
  }

  bool started() const { return hash_thread.joinable(); }
  void Start() {
    hash_thread = std::thread([this]() { RunHash(); });
    write_thread = std::thread([this]() { RunWrite(); });
  }
  void Join() {
    hash_thread.join();
    write_thread.join();
  }

  const int fd;
  const std::string path;
  // The hashing thread's once started (the caller's before that and after Join).
  FileHasher hasher;
  // The writing thread's once started (the caller's before that and after Join).
  int64_t offset = 0;
  bool direct = false;
  int64_t writeback_from = 0;

  // Waits are plain loops on one condition variable, signalled on every change (three
  // waiters at most), rather than Mutex::Await: a Condition is evaluated by whichever
  // thread unlocks, inside uninstrumented abseil, which ThreadSanitizer reports as races.
  absl::Mutex mu;
  absl::CondVar changed;
  std::deque<Filled> to_hash ABSL_GUARDED_BY(mu);
  std::deque<Filled> to_write ABSL_GUARDED_BY(mu);
  std::vector<Buffer> free ABSL_GUARDED_BY(mu);
  int allocated ABSL_GUARDED_BY(mu) = 0;
  bool closing ABSL_GUARDED_BY(mu) = false;     // nothing more comes
  bool hashed_all ABSL_GUARDED_BY(mu) = false;  // the hashing thread ended
  absl::Status error ABSL_GUARDED_BY(mu);

  // The caller's.
  std::thread hash_thread;
  std::thread write_thread;
  Buffer current;
  size_t used = 0;
};

HashingFileWriter::HashingFileWriter(int fd, std::string path, DigestKind kind)
    : shared_(std::make_unique<Shared>(fd, std::move(path), kind)) {}

HashingFileWriter::~HashingFileWriter() {
  Shared& s = *shared_;
  if (!s.started()) return;
  {
    absl::MutexLock lock(&s.mu);
    s.to_hash.clear();
    s.closing = true;
    if (s.error.ok()) s.error = absl::CancelledError("the file sink was closed");
    s.changed.SignalAll();
  }
  s.Join();
}

absl::Status HashingFileWriter::Append(absl::string_view data) {
  Shared& s = *shared_;
  {
    absl::MutexLock lock(&s.mu);
    if (!s.error.ok()) return s.error;
  }
  appended_ += static_cast<int64_t>(data.size());
  while (!data.empty()) {
    if (s.current == nullptr) {
      absl::MutexLock lock(&s.mu);
      if (s.free.empty() && s.allocated < kBuffers) {
        void* p = std::aligned_alloc(kAlign, kBufferBytes);
        if (p == nullptr) {
          return absl::ResourceExhaustedError(absl::StrCat(
              "cannot allocate a write buffer for '", s.path, "': out of memory"));
        }
        s.free.emplace_back(static_cast<char*>(p));
        ++s.allocated;
      }
      while (!s.HasFreeBuffer()) s.changed.Wait(&s.mu);
      if (!s.error.ok()) return s.error;
      s.current = std::move(s.free.back());
      s.free.pop_back();
    }
    const size_t n = std::min(kBufferBytes - s.used, data.size());
    std::memcpy(s.current.get() + s.used, data.data(), n);
    s.used += n;
    data.remove_prefix(n);
    if (s.used == kBufferBytes) {
      if (!s.started()) s.Start();
      absl::MutexLock lock(&s.mu);
      s.to_hash.push_back(Filled{std::move(s.current), s.used});
      s.changed.SignalAll();
      s.used = 0;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> HashingFileWriter::Finish() {
  Shared& s = *shared_;
  if (s.started()) {
    {
      absl::MutexLock lock(&s.mu);
      if (s.used > 0) s.to_hash.push_back(Filled{std::move(s.current), s.used});
      s.closing = true;
      s.changed.SignalAll();
    }
    s.Join();
  } else if (s.used > 0) {
    // A file smaller than one buffer: hashed and written here, no thread started.
    s.hasher.Update(absl::string_view(s.current.get(), s.used));
    absl::Status status = s.Write(s.current.get(), s.used);
    absl::MutexLock lock(&s.mu);
    if (!status.ok() && s.error.ok()) s.error = std::move(status);
  }
  s.used = 0;
  s.current.reset();
  absl::MutexLock lock(&s.mu);
  if (!s.error.ok()) return s.error;
  return s.hasher.HexDigest();
}

}  // namespace mgreg
