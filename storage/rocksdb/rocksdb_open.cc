// Opening a RocksDB store: the conversion of RocksDB statuses, the key layout, the
// engine options, and what the backend does at open (rocksdb_backend.h).
#include "storage/rocksdb/rocksdb_open.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "storage/backed_store.h"
#include "storage/planner.h"
#include "storage/rocksdb/rocksdb_backend.h"
#include "storage/rocksdb/rocksdb_crc32c.h"
#include "storage/rocksdb/rocksdb_wal.h"
#include "storage/store.h"

namespace mgreg {
namespace rocks {

using planner::CorruptRecord;
using storage::ModelRecord;

constexpr char kMetaFamily[] = "meta";
constexpr char kChunkFamily[] = "chunks";

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  const std::string detail = s.ToString();
  switch (s.code()) {
    case rocksdb::Status::kOk:
      return absl::OkStatus();
    case rocksdb::Status::kNotFound:
      return absl::NotFoundError(absl::StrCat(what, ": not found"));
    case rocksdb::Status::kCorruption:
      return absl::DataLossError(absl::StrCat(
          what, ": stored data failed its checksum; restore the data dir from a backup (",
          detail, ")"));
    case rocksdb::Status::kIOError:
      if (s.subcode() == rocksdb::Status::kNoSpace ||
          s.subcode() == rocksdb::Status::kSpaceLimit) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "disk full while ", what,
            "; free space in the data dir (writes resume once there is room; reads go "
            "on meanwhile) (",
            detail, ")"));
      }
      // RocksDB reports its LOCK file held as a plain IOError ("While lock file",
      // "lock hold by current process").
      if (absl::StrContains(detail, "lock file") ||
          absl::StrContains(detail, "lock hold")) {
        return absl::FailedPreconditionError(absl::StrCat(
            what, ": data dir in use by another process; stop it or use another dir (",
            detail, ")"));
      }
      return absl::UnavailableError(absl::StrCat(
          what, ": I/O error; check the disk and reopen the store (", detail, ")"));
    case rocksdb::Status::kBusy:
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": data dir in use by another process (", detail, ")"));
    case rocksdb::Status::kIncomplete:
    case rocksdb::Status::kShutdownInProgress:
    case rocksdb::Status::kTryAgain:
      return absl::UnavailableError(absl::StrCat(
          what, ": the store is shutting down or busy; retry (", detail, ")"));
    case rocksdb::Status::kTimedOut:
      return absl::DeadlineExceededError(
          absl::StrCat(what, ": timed out (", detail, ")"));
    case rocksdb::Status::kAborted:
      return absl::AbortedError(absl::StrCat(what, ": aborted (", detail, ")"));
    case rocksdb::Status::kCompactionTooLarge:
      return absl::ResourceExhaustedError(
          absl::StrCat(what, ": out of space for compaction (", detail, ")"));
    case rocksdb::Status::kNotSupported:
    case rocksdb::Status::kInvalidArgument:
    case rocksdb::Status::kMergeInProgress:
    case rocksdb::Status::kExpired:
    case rocksdb::Status::kColumnFamilyDropped:
      return absl::InternalError(
          absl::StrCat(what, ": internal store error (", detail, ")"));
    case rocksdb::Status::kMaxCode:
      break;
  }
  return absl::UnknownError(absl::StrCat(what, ": ", detail));
}

// ---- Keys and values. ---------------------------------------------------------------
void PutFixed64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutFixed32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t GetFixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
uint32_t GetFixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::string CheckpointPrefix(absl::string_view model) {
  std::string k;
  k.reserve(model.size() + 10);
  k.push_back('C');
  k.append(model.data(), model.size());
  k.push_back('\0');
  return k;
}
std::string CheckpointKey(absl::string_view model, int64_t step) {
  std::string k = CheckpointPrefix(model);
  const uint64_t s = static_cast<uint64_t>(step);
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>(s >> (8 * i)));
  return k;
}
std::string ModelKey(absl::string_view model) { return absl::StrCat("M", model); }
std::string BlobKey(absl::string_view hex) { return absl::StrCat("B", hex); }
std::string BlobRefKey(absl::string_view hex) { return absl::StrCat("b", hex); }
std::string ChunkRefKey(absl::string_view raw) { return absl::StrCat("K", raw); }
std::string StagedKey(absl::string_view raw) { return absl::StrCat("S", raw); }
std::string EventKey(int64_t revision) {
  std::string k(1, 'E');
  const uint64_t r = static_cast<uint64_t>(revision);
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>(r >> (8 * i)));
  return k;
}
int64_t EventKeyRevision(rocksdb::Slice key) {
  uint64_t r = 0;
  for (size_t i = 1; i < 9 && i < key.size(); ++i) {
    r = (r << 8) | static_cast<unsigned char>(key[i]);
  }
  return static_cast<int64_t>(r);
}

namespace {

// RocksDB's messages (warnings and worse) on stderr, with the server's, rather than in
// a LOG file in the data dir: once a write of that file fails for want of space,
// Debian's librocksdb 7.8 (built with assertions) aborts the process at the next
// message (WritableFileWriter::AssertFalseAndGetStatusForPrevError, from EnvLogger;
// traced with gdb under rocksdb_space_test's full disk).
class StderrLogger : public rocksdb::Logger {
 public:
  StderrLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}

  using rocksdb::Logger::Logv;
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char line[1024];
    const int n = std::vsnprintf(line, sizeof(line), format, ap);
    size_t len = n < 0 ? 0 : std::min(static_cast<size_t>(n), sizeof(line) - 1);
    while (len > 0 && line[len - 1] == '\n') --len;
    std::fprintf(stderr, "rocksdb: %.*s\n", static_cast<int>(len), line);
  }
  void LogHeader(const char*, va_list) override {}
};

}  // namespace

bool DirectWritesWork(const std::string& dir) {
  // An unnamed file (O_TMPFILE): nothing is left in the data dir, even after a crash.
  const int fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_DIRECT | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  // Some file systems accept the flag and refuse the write.
  void* block = nullptr;
  bool ok = false;
  if (posix_memalign(&block, 4096, 4096) == 0) {
    std::memset(block, 0, 4096);
    ok = ::pwrite(fd, block, 4096, 0) == 4096;
    std::free(block);
  }
  ::close(fd);
  return ok;
}

rocksdb::DBOptions MakeDbOptions() {
  rocksdb::DBOptions o;
  o.create_if_missing = true;
  o.create_missing_column_families = true;
  o.max_background_jobs = 2;
  // Spread the write-back of flushed files instead of one long fsync at the end.
  o.bytes_per_sync = 4 << 20;
  // Chunk writes bypass the WAL; the WAL carries only metadata and small chunks.
  o.max_total_wal_size = 64 << 20;
  o.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  o.info_log = std::make_shared<StderrLogger>();
  // No preallocation: RocksDB would reserve 1.1 write buffers (35 MiB) for every WAL
  // file, space a small disk lacks and that the data dir would hold while empty.
  o.allow_fallocate = false;
  return o;
}

// The default family holds nothing; its write buffer is small so that it does not
// raise RecoveryBufferBytes() (RocksDB's default is 64 MiB).
rocksdb::ColumnFamilyOptions MakeDefaultOptions() {
  rocksdb::ColumnFamilyOptions o;
  o.write_buffer_size = 1 << 20;
  return o;
}

rocksdb::ColumnFamilyOptions MakeMetaOptions() {
  rocksdb::ColumnFamilyOptions o;
  o.write_buffer_size = 16 << 20;
  return o;
}

rocksdb::ColumnFamilyOptions MakeChunkOptions() {
  rocksdb::ColumnFamilyOptions o;
  // Chunk bytes pass through the memtable on their way to blob files (RocksDB 7.8's
  // integrated BlobDB), so these buffers are most of what a push costs the server in
  // memory: two of 16 MiB (one filling, one flushing) keep its peak RSS under 128 MiB
  // while 4 GiB are pushed and restored (bench/memory_bench; 32 MiB buffers gave
  // 126-187 MiB, 8 MiB ones cost ~0.3 CPU-s per GiB more in flushes: bench/RESULTS.md).
  o.write_buffer_size = 16 << 20;
  o.max_write_buffer_number = 2;
  o.compression = rocksdb::kNoCompression;  // checkpoint floats do not compress
  o.enable_blob_files = true;
  o.min_blob_size = 1024;
  o.blob_file_size = 256 << 20;
  o.blob_compression_type = rocksdb::kNoCompression;
  // No blob GC: it relocates live chunks of the oldest blob files in every compaction
  // (measured: CRC and copy of the same bytes again, throughput halved). A blob file
  // is still dropped once every chunk in it is deleted, which is how whole
  // checkpoints age out.
  o.enable_blob_garbage_collection = false;
  return o;
}

int64_t RecoveryBufferBytes() {
  // What DB::Open reserves in the SstFileManager: the largest write_buffer_size.
  return static_cast<int64_t>(std::max({MakeDefaultOptions().write_buffer_size,
                                        MakeMetaOptions().write_buffer_size,
                                        MakeChunkOptions().write_buffer_size}));
}

absl::Status RocksBackend::Load(bool fresh) {
  ASSIGN_OR_RETURN(std::optional<std::string> tag,
                   GetMeta(kFormatKey, "opening the store"));
  if (!tag.has_value()) {
    if (!fresh) {
      return absl::FailedPreconditionError(
          "the data dir holds a RocksDB database that is not an mgreg store");
    }
    rocksdb::WriteBatch batch;
    batch.Put(meta_, kFormatKey, kFormatTag);
    PutFixed64(&tag.emplace(), 0);
    batch.Put(meta_, kRevisionKey, *tag);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    RETURN_IF_ERROR(FromRocks(db_->Write(wo, &batch), "creating the store"));
  } else if (*tag != kFormatTag) {
    return absl::FailedPreconditionError(
        absl::StrCat("the data dir holds an mgreg store of format '", *tag,
                     "'; this build reads '", kFormatTag, "'"));
  }

  absl::MutexLock state(&state_mu_);
  ASSIGN_OR_RETURN(std::optional<std::string> rev,
                   GetMeta(kRevisionKey, "opening the store"));
  if (!rev.has_value() || rev->size() != 8) return CorruptRecord("revision");
  head_.revision = static_cast<int64_t>(GetFixed64(rev->data()));

  // Scans [prefix, prefix+1) of the meta family.
  auto scan = [&](char prefix, auto&& fn) -> absl::Status {
    const std::string lo(1, prefix), hi(1, static_cast<char>(prefix + 1));
    rocksdb::Slice upper(hi);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_));
    for (it->Seek(lo); it->Valid(); it->Next()) {
      RETURN_IF_ERROR(fn(it->key(), it->value()));
    }
    return FromRocks(it->status(), "opening the store");
  };

  RETURN_IF_ERROR(
      scan('M', [&](rocksdb::Slice key, rocksdb::Slice value) -> absl::Status {
        ModelState m;
        if (!m.model.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          return CorruptRecord("model");
        }
        if (m.model.checkpoint_count() > 0) {
          ASSIGN_OR_RETURN(std::optional<std::string> latest,
                           GetMeta(CheckpointKey(m.model.name(), m.model.latest_step()),
                                   "opening the store"));
          if (!latest.has_value() || !m.latest.ParseFromString(*latest)) {
            return CorruptRecord("latest checkpoint");
          }
          ++head_.models;
        }
        head_.checkpoints += m.model.checkpoint_count();
        models_.emplace(key.ToString().substr(1), std::move(m));
        return absl::OkStatus();
      }));
  RETURN_IF_ERROR(scan('b', [&](rocksdb::Slice, rocksdb::Slice) -> absl::Status {
    ++head_.blobs;
    return absl::OkStatus();
  }));
  RETURN_IF_ERROR(scan('K', [&](rocksdb::Slice, rocksdb::Slice value) -> absl::Status {
    if (value.size() != 12) return CorruptRecord("chunk refcount");
    ++head_.chunks;
    head_.chunk_bytes += GetFixed32(value.data() + 8);
    return absl::OkStatus();
  }));

  // The oldest retained event; trim to the window (it may have shrunk since the last
  // open). Only the first key is read.
  head_.oldest_event = head_.revision + 1;
  {
    const std::string lo(1, 'E'), hi(1, 'F');
    rocksdb::Slice upper(hi);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_));
    it->Seek(lo);
    if (it->Valid()) head_.oldest_event = EventKeyRevision(it->key());
    RETURN_IF_ERROR(FromRocks(it->status(), "opening the store"));
  }
  if (head_.oldest_event > head_.revision + 1) return CorruptRecord("event");
  if (head_.revision - head_.oldest_event + 1 > options_.event_window) {
    rocksdb::WriteBatch trim;
    for (; head_.oldest_event <= head_.revision - options_.event_window;
         ++head_.oldest_event) {
      trim.Delete(meta_, EventKey(head_.oldest_event));
    }
    // Not synced: if lost, the next open trims again.
    RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &trim),
                              "trimming the event log to its window"));
  }

  // Collect the chunks of uploads that were never committed.
  rocksdb::WriteBatch gc;
  RETURN_IF_ERROR(scan('S', [&](rocksdb::Slice key, rocksdb::Slice) -> absl::Status {
    const std::string raw = key.ToString().substr(1);
    ASSIGN_OR_RETURN(ChunkEntry refs, GetChunkRefs(raw));
    if (refs.refs == 0) gc.Delete(chunks_, raw);
    gc.Delete(meta_, key);
    return absl::OkStatus();
  }));
  if (gc.Count() > 0) {
    RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &gc),
                              "collecting chunks of aborted uploads"));
  }
  StartUpkeep();
  // Bytes deleted before a restart (and the chunks just collected) may still sit in
  // blob files: the first reclaim gives them back.
  if (!fresh) RequestReclaim();
  return absl::OkStatus();
}

}  // namespace rocks

absl::StatusOr<std::shared_ptr<Backend>> OpenRocksDbBackend(
    const RocksDbStoreOptions& options, std::shared_ptr<rocksdb::Env> env) {
  namespace fs = std::filesystem;
  if (options.path.empty()) {
    return absl::InvalidArgumentError("the store needs a data dir path; none was given");
  }
  if (options.min_free_bytes > 0 &&
      options.min_free_bytes < rocks::RecoveryBufferBytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the free-space reserve (--min-free-bytes, config min_free_bytes) is ",
        options.min_free_bytes, " bytes, less than the ", rocks::RecoveryBufferBytes(),
        " bytes RocksDB needs free before it resumes writing after a full disk; set at "
        "least ",
        rocks::RecoveryBufferBytes(),
        " (default 256 MiB), or turn the check off (flag 0, "
        "config -1)"));
  }
  std::error_code ec;
  fs::create_directories(options.path, ec);
  if (ec || !fs::is_directory(options.path, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot use '", options.path,
                     "' as the data dir: ", ec ? ec.message() : "not a directory"));
  }
  const bool fresh = fs::is_empty(options.path, ec);
  if (!fresh) {
    if (!fs::exists(fs::path(options.path) / "CURRENT", ec)) {
      return absl::FailedPreconditionError(
          absl::StrCat("'", options.path,
                       "' is not empty and is not an mgreg store; give an empty or "
                       "new directory"));
    }
    std::vector<std::string> families;
    RETURN_IF_ERROR(rocks::FromRocks(
        rocksdb::DB::ListColumnFamilies(rocks::MakeDbOptions(), options.path, &families),
        "opening the store"));
    for (const char* want : {rocks::kMetaFamily, rocks::kChunkFamily}) {
      if (std::find(families.begin(), families.end(), want) == families.end()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "'", options.path, "' holds a RocksDB database that is not an mgreg store"));
      }
    }
  }

  // Once per process; also what links rocksdb_crc32c.cc (and its interposing
  // definition) into every program that opens a RocksDB store.
  [[maybe_unused]] static const bool fast_crc = [] {
    const bool in_use = rocks::FastCrc32cInUse();
    if (!in_use) {
      std::fprintf(stderr,
                   "rocksdb: CRC32C runs in RocksDB's software implementation in this "
                   "process (~1 GB/s, about 1 CPU-s per GiB written): its calls do not "
                   "reach ISA-L's (storage/rocksdb/rocksdb_crc32c.h)\n");
    }
    return in_use;
  }();

  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, rocks::MakeDefaultOptions()},
      {rocks::kMetaFamily, rocks::MakeMetaOptions()},
      {rocks::kChunkFamily, rocks::MakeChunkOptions()},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::DBOptions db_options = rocks::MakeDbOptions();
  // A synced commit appends to the WAL without growing it (rocksdb_wal.h): one data
  // write, no second one for the file's new size.
  if (options.sync_commits) {
    env = rocksdb::NewCompositeEnv(rocks::NewZeroFilledWalFileSystem(
        env != nullptr ? env->GetFileSystem() : rocksdb::FileSystem::Default()));
  }
  if (env != nullptr) db_options.env = env.get();
  // Flushes and compactions write their files (the chunk bytes' blob files above all)
  // with O_DIRECT where the file system allows it: the page cache's copy, page
  // allocation and write-back of every pushed byte cost the server ~0.5 CPU-s per GiB
  // (bench/push_bench, bench/RESULTS.md, issue 17). Each file is still synced before
  // the flush that wrote it counts. Reads stay buffered.
  db_options.use_direct_io_for_flush_and_compaction =
      rocks::DirectWritesWork(options.path);
  auto recovery = std::make_shared<rocks::RecoveryListener>();
  db_options.listeners.push_back(recovery);
  RETURN_IF_ERROR(
      rocks::FromRocks(rocksdb::DB::Open(db_options, options.path, cfs, &handles, &raw),
                       absl::StrCat("opening the store in '", options.path, "'")));
  rocks::RocksOptions rocks_options;
  rocks_options.sync = options.sync_commits;
  rocks_options.event_window = options.event_window;
  rocks_options.min_free_bytes = options.min_free_bytes;
  auto backend = std::make_shared<rocks::RocksBackend>(std::move(env),
                                                       std::unique_ptr<rocksdb::DB>(raw),
                                                       std::move(handles), rocks_options);
  backend->SetRecoveryListener(std::move(recovery));
  RETURN_IF_ERROR(backend->Load(fresh));
  return std::shared_ptr<Backend>(std::move(backend));
}

absl::StatusOr<std::unique_ptr<Store>> OpenRocksDbStore(
    const RocksDbStoreOptions& options, std::shared_ptr<rocksdb::Env> env) {
  ASSIGN_OR_RETURN(std::shared_ptr<Backend> backend,
                   OpenRocksDbBackend(options, std::move(env)));
  return NewBackedStore(std::move(backend), options.event_window);
}

absl::StatusOr<std::unique_ptr<Store>> OpenRocksDbStore(
    const RocksDbStoreOptions& options) {
  return OpenRocksDbStore(options, nullptr);
}

}  // namespace mgreg
