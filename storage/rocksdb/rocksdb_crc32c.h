// RocksDB's CRC32C on the CPU's CRC32 instruction.
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
// in rocksdb_crc32c.cc, which runs the CRC32 instruction. It computes the same
// function, so data dirs written with either implementation read back with the other.
// On a CPU without SSE4.2 it calls RocksDB's own implementation.
#ifndef MGREG_STORAGE_ROCKSDB_ROCKSDB_CRC32C_H_
#define MGREG_STORAGE_ROCKSDB_ROCKSDB_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace mgreg::rocks {

// RocksDB's CRC32C calls as this process resolves them: what RocksDB's own code calls
// (rocksdb_crc32c.cc's when wrapped) and RocksDB's own implementation.
using Crc32cExtendFn = uint32_t (*)(uint32_t crc, const char* data, size_t n);
uint32_t RocksDbCrc32cExtend(uint32_t crc, const char* data, size_t n);
uint32_t LibraryCrc32cExtend(uint32_t crc, const char* data, size_t n);

// True if RocksDB's CRC32C calls in this process run the CPU's CRC32 instruction: the
// CPU has SSE4.2 and a checksum computed by RocksDB's code went through
// RocksDbCrc32cExtend (checked once, through RocksDB's CRC32C file checksum).
bool HardwareCrc32cInUse();

// How many times RocksDbCrc32cExtend ran on the calling thread (for tests).
uint64_t Crc32cCallsOnThisThread();

}  // namespace mgreg::rocks

#endif  // MGREG_STORAGE_ROCKSDB_ROCKSDB_CRC32C_H_
