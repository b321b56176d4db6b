// RocksDB's CRC32C through ISA-L (common/crc32c.h).
//
// RocksDB checksums every block of its tables, every blob record (the whole chunk) and
// every WAL record with CRC32C. Debian's librocksdb 7.8 is built portable, without
// SSE4.2: its rocksdb::crc32c::Extend runs a table-driven loop at ~1 GB/s
// (IsFastCrc32Supported() says "Not supported on x86"), 19 % of the server's CPU while
// pushing (perf, bench/RESULTS.md, issue 17: ~0.7 CPU-s per GiB).
//
// mgreg links that library statically. storage/CMakeLists.txt links every program that
// uses the store with `--wrap` for rocksdb::crc32c::Extend, so RocksDB's calls to it
// (from its other object files: all of them but crc32c.cc's own) reach the definition
// in rocksdb_crc32c.cc, which calls mgreg::Crc32c: ISA-L's crc32_iscsi, which picks the
// best code the CPU has (folding with VPCLMULQDQ on AVX-512 CPUs: 29-35 GB/s on this
// machine's EPYC, against 13-15 GB/s for the CRC32 instruction in three interleaved
// strips this file used before; the CRC32 instruction or tables on older CPUs). It
// computes the same function, so data dirs written with either implementation read
// back with the other.
#ifndef MGREG_STORAGE_ROCKSDB_ROCKSDB_CRC32C_H_
#define MGREG_STORAGE_ROCKSDB_ROCKSDB_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace mgreg::rocks {

// RocksDB's CRC32C calls as this process resolves them: what RocksDB's own code calls
// (rocksdb_crc32c.cc's when wrapped) and RocksDB's own implementation.
uint32_t RocksDbCrc32cExtend(uint32_t crc, const char* data, size_t n);
uint32_t LibraryCrc32cExtend(uint32_t crc, const char* data, size_t n);

// True if RocksDB's CRC32C calls in this process go through ISA-L: a checksum computed
// by RocksDB's code went through RocksDbCrc32cExtend (checked once, through RocksDB's
// CRC32C file checksum).
bool FastCrc32cInUse();

// How many times RocksDbCrc32cExtend ran on the calling thread (for tests).
uint64_t Crc32cCallsOnThisThread();

}  // namespace mgreg::rocks

#endif  // MGREG_STORAGE_ROCKSDB_ROCKSDB_CRC32C_H_
