// WAL files written ahead with zeros (rocksdb_wal.h).
#include "storage/rocksdb/rocksdb_wal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"

namespace mgreg::rocks {
namespace {

using rocksdb::DataVerificationInfo;
using rocksdb::FileOptions;
using rocksdb::FSWritableFile;
using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

// Writes zeros over [from, to) of `fd`; false on any failure.
bool WriteZeros(int fd, uint64_t from, uint64_t to) {
  static const char kZeros[kWalBlockBytes] = {};
  while (from < to) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(to - from, sizeof(kZeros)));
    const ssize_t done = ::pwrite(fd, kZeros, n, static_cast<off_t>(from));
    if (done < 0 && errno == EINTR) continue;
    if (done <= 0) return false;
    from += static_cast<uint64_t>(done);
  }
  return true;
}

// Best effort: a failure leaves zeros, which read as the end of the log.
void TruncateTo(int fd, uint64_t size) {
  [[maybe_unused]] const int r = ::ftruncate(fd, static_cast<off_t>(size));
}

// A WAL file of the wrapped file system, with the zeros its appends will overwrite
// written ahead through `fd` (owned; -1: none, the file appends as it would unwrapped).
class ZeroFilledWal : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  ZeroFilledWal(std::unique_ptr<FSWritableFile> file, int fd)
      : FSWritableFileOwnerWrapper(std::move(file)), fd_(fd) {
    absl::MutexLock lock(&mu_);
    FillTo(kWalFirstZeros);
  }
  ~ZeroFilledWal() override {
    absl::MutexLock lock(&mu_);
    CloseFd();
  }

  IOStatus Append(const Slice& data, const IOOptions& options,
                  IODebugContext* dbg) override {
    absl::MutexLock lock(&mu_);
    FillTo(WalZerosEnd(written_, data.size(), filled_));
    IOStatus s = target()->Append(data, options, dbg);
    if (s.ok()) written_ += data.size();
    return s;
  }
  IOStatus Append(const Slice& data, const IOOptions& options,
                  const DataVerificationInfo& info, IODebugContext* dbg) override {
    absl::MutexLock lock(&mu_);
    FillTo(WalZerosEnd(written_, data.size(), filled_));
    IOStatus s = target()->Append(data, options, info, dbg);
    if (s.ok()) written_ += data.size();
    return s;
  }
  // RocksDB does not write WAL files at offsets; if it ever does, stop writing ahead
  // rather than guess where the file ends.
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            IODebugContext* dbg) override {
    absl::MutexLock lock(&mu_);
    CloseFd();
    return target()->PositionedAppend(data, offset, options, dbg);
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            const DataVerificationInfo& info,
                            IODebugContext* dbg) override {
    absl::MutexLock lock(&mu_);
    CloseFd();
    return target()->PositionedAppend(data, offset, options, info, dbg);
  }
  IOStatus Truncate(uint64_t size, const IOOptions& options,
                    IODebugContext* dbg) override {
    absl::MutexLock lock(&mu_);
    CloseFd();
    return target()->Truncate(size, options, dbg);
  }
  IOStatus Close(const IOOptions& options, IODebugContext* dbg) override {
    absl::MutexLock lock(&mu_);
    IOStatus s = target()->Close(options, dbg);
    // The zeros past the last record go: not needed for safety (they read as the end of
    // the log), but a closed WAL then has the size RocksDB wrote.
    // A failure is harmless: the zeros stay until RocksDB deletes the file.
    if (s.ok() && fd_ >= 0 && filled_ > written_) TruncateTo(fd_, written_);
    CloseFd();
    return s;
  }

 private:
  void FillTo(uint64_t end) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (fd_ < 0 || end <= filled_) return;
    if (!WriteZeros(fd_, filled_, end)) {
      // A full disk, most likely: give back what was written past the block boundary
      // reached before (the tail stays a whole number of log blocks; if this fails,
      // zeros past it read as the end of the log too) and append as an unwrapped file
      // does from now on.
      TruncateTo(fd_, std::max(filled_, written_));
      CloseFd();
      return;
    }
    filled_ = end;
  }
  void CloseFd() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // RocksDB appends from whichever thread leads a write group, one at a time; the
  // lock makes that order visible (to ThreadSanitizer too: RocksDB's own hand-off is
  // not instrumented) and costs one uncontended lock per append.
  absl::Mutex mu_;
  int fd_ ABSL_GUARDED_BY(mu_);
  uint64_t written_ ABSL_GUARDED_BY(mu_) = 0;  // bytes appended through the wrapped file
  uint64_t filled_ ABSL_GUARDED_BY(mu_) = 0;   // zeros written up to here
};

class ZeroFilledWalFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit ZeroFilledWalFileSystem(std::shared_ptr<rocksdb::FileSystem> base)
      : FileSystemWrapper(std::move(base)) {}

  const char* Name() const override { return "MgregZeroFilledWalFileSystem"; }

  IOStatus NewWritableFile(const std::string& fname, const FileOptions& options,
                           std::unique_ptr<FSWritableFile>* result,
                           IODebugContext* dbg) override {
    IOStatus s = target()->NewWritableFile(fname, options, result, dbg);
    if (!s.ok() || !IsWalFileName(fname)) return s;
    // The wrapped file system created the file empty; a second descriptor writes the
    // zeros. Without one (a file system not backed by this path) nothing changes.
    const int fd = ::open(fname.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return s;
    *result = std::make_unique<ZeroFilledWal>(std::move(*result), fd);
    return s;
  }
};

}  // namespace

bool IsWalFileName(absl::string_view path) {
  const size_t slash = path.rfind('/');
  absl::string_view name =
      slash == absl::string_view::npos ? path : path.substr(slash + 1);
  if (!absl::ConsumeSuffix(&name, ".log") || name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
}

uint64_t WalZerosEnd(uint64_t written, uint64_t append, uint64_t filled) {
  const uint64_t end = written + append;
  if (end <= filled) return filled;
  const uint64_t ahead = std::max(kWalFirstZeros, std::min(end, kWalMaxZerosAhead));
  return (end + ahead + kWalBlockBytes - 1) / kWalBlockBytes * kWalBlockBytes;
}

std::shared_ptr<rocksdb::FileSystem> NewZeroFilledWalFileSystem(
    std::shared_ptr<rocksdb::FileSystem> base) {
  return std::make_shared<ZeroFilledWalFileSystem>(std::move(base));
}

}  // namespace mgreg::rocks
