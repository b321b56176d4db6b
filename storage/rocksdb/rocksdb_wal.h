// Write-ahead log files whose appends overwrite zeros already on disk, so that a synced
// commit costs one data write and no second synchronous write of the file's size
// (bench/storage_bench store-commit-latency, issue 17). Internal to storage/rocksdb/.
//
// Why. A commit is one synced WriteBatch: RocksDB appends its record to the WAL and
// calls fdatasync. An append grows the file, and the file system must persist the new
// size before fdatasync returns (ext4 with a journal commits it to the journal; the ext4
// of the bench machine, which has none, writes the inode block): a second synchronous
// write, measured at 1.5-1.7x one 4 KiB O_DSYNC overwrite there, 2.3x with the commit's
// CPU. A write over blocks that already hold data inside the file's size changes no
// metadata fdatasync must persist (the mtime is not), so it costs what an O_DSYNC
// overwrite costs (1.1x). RocksDB 7.8's own answer, WAL recycling
// (recycle_log_file_num), is switched off under point-in-time recovery, which the store
// uses; fallocate leaves unwritten extents whose conversion is metadata to persist again.
//
// What. NewZeroFilledWalFileSystem wraps a FileSystem; every WAL file it creates
// (`<number>.log`) is written ahead with zeros through a second descriptor: 64 KiB at
// creation, then, whenever an append would pass the zeros, up to that append's end plus
// as much again as the file holds (at least 64 KiB, at most 1 MiB more). The zeros reach
// the disk with the next sync (the first one into a new WAL already pays the metadata of
// the new file); later appends are overwrites. Extents always end on RocksDB's 32 KiB log
// block boundary. A clean Close truncates the file to what RocksDB wrote.
//
// Why it is safe. RocksDB writes a WAL front to back through the wrapped file (its
// offset is the file position, which the zeros, written with pwrite, do not move), so
// what lies past the last record is zeros or a hole, both read as zeros. RocksDB 7.8's
// log reader (db/log_reader.cc, ReadPhysicalRecord) skips a zero header (type kZeroType,
// length 0) without reporting anything, and drops the rest of that 32 KiB block: a zero
// tail reads as the end of the log, as the tail preallocated by its mmap writer did. A
// record torn by a crash and followed by zeros fails its checksum, which point-in-time
// recovery treats as it treats a torn record at the end of the file: replay stops
// there. Acknowledged commits were synced, and a sync persists every byte appended
// before it, so none lies past a torn record. The zeros are written outside the wrapped
// file system (a FaultInjectionFileSystem does not see them); a failed zero write (a
// full disk) stops the writing ahead for that file, which then appends as before.
//
// Thread safety: RocksDB appends to a WAL from whichever thread leads a write group, one
// at a time; each file serializes its calls with a lock of its own.
#ifndef MGREG_STORAGE_ROCKSDB_ROCKSDB_WAL_H_
#define MGREG_STORAGE_ROCKSDB_ROCKSDB_WAL_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "rocksdb/file_system.h"

namespace mgreg::rocks {

// RocksDB's log block (db/log_format.h kBlockSize): zero extents end on its multiples.
inline constexpr uint64_t kWalBlockBytes = 32 << 10;
// The zeros written when a WAL file is created, and the least written ahead after.
inline constexpr uint64_t kWalFirstZeros = 64 << 10;
// The most written ahead at once.
inline constexpr uint64_t kWalMaxZerosAhead = 1 << 20;

// True if `path` names a RocksDB WAL file ("<digits>.log").
bool IsWalFileName(absl::string_view path);

// Where the zeros of a WAL file that holds `written` bytes and is zero-filled up to
// `filled` must end before an append of `append` bytes: `filled` if the append fits,
// else the append's end plus max(kWalFirstZeros, min(end, kWalMaxZerosAhead)), rounded
// up to kWalBlockBytes.
uint64_t WalZerosEnd(uint64_t written, uint64_t append, uint64_t filled);

// `base` with WAL files written ahead with zeros (see above). Every other call goes to
// `base` unchanged.
std::shared_ptr<rocksdb::FileSystem> NewZeroFilledWalFileSystem(
    std::shared_ptr<rocksdb::FileSystem> base);

}  // namespace mgreg::rocks

#endif  // MGREG_STORAGE_ROCKSDB_ROCKSDB_WAL_H_
