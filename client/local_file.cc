#include "client/local_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/hashing_file_writer.h"
#include "common/sha256.h"

namespace mgreg {
namespace fs = std::filesystem;
namespace {

// Bytes of the final file name kept in the temporary one (".<stem>.mgreg-XXXXXX").
constexpr size_t kMaxTempStemBytes = 255 - 14;

}  // namespace

// Local file-system errors, with codes chosen by who must act. None is UNAVAILABLE:
// that code means the server cannot be reached, and callers retry on it.
absl::Status LocalFileError(int err, absl::string_view what, absl::string_view path) {
  std::string message = absl::StrCat(what, " '", path, "': ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(
          absl::StrCat(message, "; fix the permissions or choose another place"));
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(
          absl::StrCat(message, "; free some space and retry"));
    case EMFILE:
    case ENFILE:
    case ENOMEM:
      return absl::ResourceExhaustedError(
          absl::StrCat(message,
                       "; the process or the machine ran out of file "
                       "descriptors or memory"));
    case ENAMETOOLONG:
      return absl::InvalidArgumentError(
          absl::StrCat(message,
                       "; the name is longer than this file system allows: use a shorter "
                       "directory or basename"));
    case EAGAIN:
    case EBUSY:
    case ETXTBSY:
      return absl::AbortedError(absl::StrCat(message, "; the file is busy, retry"));
    default:
      // EIO, ENOTDIR, EISDIR, ELOOP, EEXIST, ...: the local file system is not in a state
      // the operation needs; someone must look at it.
      return absl::FailedPreconditionError(message);
  }
}

absl::StatusOr<LocalFile> LocalFile::OpenForRead(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return LocalFileError(errno, "cannot open", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return LocalFileError(err, "cannot stat", path);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is not a regular file"));
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return LocalFile(path, fd, st.st_size);
}

LocalFile::LocalFile(LocalFile&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      size_(other.size_) {}

LocalFile& LocalFile::operator=(LocalFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    size_ = other.size_;
  }
  return *this;
}

LocalFile::~LocalFile() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status LocalFile::ReadAt(int64_t offset, size_t n, std::string* out) {
  out->resize(n);
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd_, out->data() + done, n - done,
                              static_cast<off_t>(offset + static_cast<int64_t>(done)));
    if (r < 0) {
      if (errno == EINTR) continue;
      return LocalFileError(errno, "cannot read", path_);
    }
    if (r == 0) {
      return absl::DataLossError(
          absl::StrCat("'", path_, "' ended at ", offset + static_cast<int64_t>(done),
                       " bytes; it was truncated while being read"));
    }
    done += static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

namespace {

// ChunkDigests over an open file.
absl::StatusOr<std::vector<std::string>> HashPieces(LocalFile& file, int64_t chunk_bytes,
                                                    int64_t stride, int threads) {
  if (chunk_bytes <= 0 || stride <= 0 || threads <= 0) {
    return absl::InvalidArgumentError("chunk size, stride and threads must be positive");
  }
  const size_t count = static_cast<size_t>((file.size() + chunk_bytes - 1) / chunk_bytes);
  std::vector<std::string> out(count);
  // Each worker takes the next two chunks to hash (pread at their offsets: one
  // descriptor serves them all), so they read the file front to back together, and
  // hashes them with Sha256RawPair (two SHA-256s interleaved on one core run up to twice
  // as fast as one, issue 17); the last chunk may be alone.
  std::atomic<size_t> next{0};  // in chunks of the sample: chunk next * stride
  std::vector<absl::Status> errors(static_cast<size_t>(threads));
  auto work = [&](size_t worker) {
    std::string buffers[2];
    for (;;) {
      const size_t first = next.fetch_add(2);
      size_t which[2];
      int n = 0;
      for (size_t j = first; j < first + 2; ++j) {
        const size_t i = j * static_cast<size_t>(stride);
        if (i < count) which[n++] = i;
      }
      if (n == 0) return;
      for (int k = 0; k < n; ++k) {
        const int64_t pos = static_cast<int64_t>(which[k]) * chunk_bytes;
        const size_t bytes =
            static_cast<size_t>(std::min<int64_t>(chunk_bytes, file.size() - pos));
        if (absl::Status s = file.ReadAt(pos, bytes, &buffers[k]); !s.ok()) {
          errors[worker] = s;
          next.store(count);  // the others stop too
          return;
        }
      }
      if (n == 2) {
        std::tie(out[which[0]], out[which[1]]) = Sha256RawPair(buffers[0], buffers[1]);
      } else {
        out[which[0]] = Sha256Raw(buffers[0]);
      }
    }
  };
  std::vector<std::thread> workers;
  for (int t = 1; t < threads; ++t) {
    workers.emplace_back(work, static_cast<size_t>(t));
  }
  work(0);
  for (std::thread& t : workers) t.join();
  for (const absl::Status& s : errors) {
    if (!s.ok()) return s;
  }
  return out;
}

}  // namespace

absl::StatusOr<FileDigest> DigestFile(const std::string& path, int threads) {
  absl::StatusOr<LocalFile> file = LocalFile::OpenForRead(path);
  if (!file.ok()) return file.status();
  FileDigest out;
  out.size = file->size();
  absl::StatusOr<std::vector<std::string>> pieces =
      HashPieces(*file, kDigestPieceBytes, 1, threads);
  if (!pieces.ok()) return pieces.status();
  out.pieces = *std::move(pieces);
  out.chunked_sha256 = ChunkedSha256FromPieces(out.pieces);
  return out;
}

absl::StatusOr<std::string> Sha256OfFile(const std::string& path) {
  absl::StatusOr<LocalFile> file = LocalFile::OpenForRead(path);
  if (!file.ok()) return file.status();
  Sha256 hasher;
  std::string buffer;
  constexpr size_t kPiece = 4u << 20;
  for (int64_t pos = 0; pos < file->size();) {
    const size_t n = static_cast<size_t>(std::min<int64_t>(kPiece, file->size() - pos));
    if (absl::Status s = file->ReadAt(pos, n, &buffer); !s.ok()) return s;
    hasher.Update(buffer);
    pos += static_cast<int64_t>(n);
  }
  return hasher.HexDigest();
}

absl::StatusOr<std::vector<std::string>> ChunkDigests(const std::string& path,
                                                      int64_t chunk_bytes, int64_t stride,
                                                      int threads) {
  absl::StatusOr<LocalFile> file = LocalFile::OpenForRead(path);
  if (!file.ok()) return file.status();
  return HashPieces(*file, chunk_bytes, stride, threads);
}

ExpectedDigest ExpectedDigestOf(absl::string_view sha256,
                                absl::string_view chunked_sha256) {
  if (!chunked_sha256.empty()) {
    return ExpectedDigest{DigestKind::kChunkedSha256, std::string(chunked_sha256)};
  }
  return ExpectedDigest{DigestKind::kSha256, std::string(sha256)};
}

bool FileMatches(const std::string& path, int64_t size, const ExpectedDigest& digest) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec) ||
      static_cast<int64_t>(fs::file_size(path, ec)) != size || ec) {
    return false;
  }
  if (digest.kind == DigestKind::kChunkedSha256) {
    absl::StatusOr<FileDigest> got = DigestFile(path);
    return got.ok() && got->chunked_sha256 == digest.hex;
  }
  absl::StatusOr<std::string> got = Sha256OfFile(path);
  return got.ok() && *got == digest.hex;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  absl::StatusOr<LocalFile> file = LocalFile::OpenForRead(path);
  if (!file.ok()) return file.status();
  std::string out;
  if (absl::Status s = file->ReadAt(0, static_cast<size_t>(file->size()), &out);
      !s.ok()) {
    return s;
  }
  return out;
}

absl::Status EnsureWritableDirectory(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create directory '", dir,
        "': ", ec ? ec.message() : std::string("a file of that name exists")));
  }
  const std::string probe = (fs::path(dir) / ".mgreg-write-test").string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("directory '", dir, "' is not writable (", std::strerror(errno),
                     "); choose another directory or fix its permissions"));
  }
  ::close(fd);
  ::unlink(probe.c_str());
  return absl::OkStatus();
}

absl::StatusOr<AtomicFileWriter> AtomicFileWriter::Create(const std::string& path,
                                                          DigestKind kind) {
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  // The temporary name must fit wherever the final one does: at most 255 bytes.
  std::string temp =
      (dir /
       ("." + target.filename().string().substr(0, kMaxTempStemBytes) + ".mgreg-XXXXXX"))
          .string();
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) return LocalFileError(errno, "cannot create a temporary file beside", path);
  ::fchmod(fd, 0644);
  return AtomicFileWriter(path, temp, fd, kind);
}

AtomicFileWriter::AtomicFileWriter(std::string path, std::string temp_path, int fd,
                                   DigestKind kind)
    : path_(std::move(path)),
      temp_path_(std::move(temp_path)),
      fd_(fd),
      kind_(kind),
      sink_(std::make_unique<HashingFileWriter>(fd, path_, kind)) {}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& other) noexcept
    : path_(std::move(other.path_)),
      temp_path_(std::move(other.temp_path_)),
      fd_(std::exchange(other.fd_, -1)),
      kind_(other.kind_),
      sink_(std::move(other.sink_)) {}

AtomicFileWriter::~AtomicFileWriter() { Discard(); }

void AtomicFileWriter::Discard() {
  sink_.reset();  // stops its thread before the file goes
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
    ::unlink(temp_path_.c_str());
  }
}

absl::Status AtomicFileWriter::Append(absl::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError("the file was already discarded");
  absl::Status status = sink_->Append(data);
  if (!status.ok()) Discard();
  return status;
}

absl::Status AtomicFileWriter::Commit(int64_t expected_size,
                                      absl::string_view expected_digest_hex) {
  if (fd_ < 0) return absl::FailedPreconditionError("the file was already discarded");
  const int64_t written = sink_->appended();
  absl::StatusOr<std::string> got = sink_->Finish();
  if (!got.ok()) {
    Discard();
    return got.status();
  }
  if (written != expected_size) {
    Discard();
    return absl::DataLossError(absl::StrCat("'", path_, "': received ", written,
                                            " bytes, expected ", expected_size,
                                            "; the transfer was cut short, retry"));
  }
  if (*got != expected_digest_hex) {
    Discard();
    return absl::DataLossError(absl::StrCat(
        "'", path_, "': ", DigestKindName(kind_), " of the received bytes ", *got,
        " differs from the server's ", expected_digest_hex, "; retry"));
  }
  if (::fsync(fd_) != 0) {
    const int err = errno;
    Discard();
    return LocalFileError(err, "cannot sync", path_);
  }
  ::close(fd_);
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_path_.c_str());
    return LocalFileError(err, "cannot rename into", path_);
  }
  const fs::path target(path_);
  const std::string dir =
      target.has_parent_path() ? target.parent_path().string() : std::string(".");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

}  // namespace mgreg
