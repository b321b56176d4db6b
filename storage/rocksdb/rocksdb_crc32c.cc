// RocksDB's CRC32C through ISA-L (rocksdb_crc32c.h).
#include "storage/rocksdb/rocksdb_crc32c.h"

#include <memory>

#include "absl/strings/string_view.h"
#include "common/crc32c.h"
#include "rocksdb/file_checksum.h"

// rocksdb::crc32c::Extend(unsigned int, char const*, unsigned long), as the linker's
// --wrap names it: RocksDB's calls go to __wrap_, and __real_ is RocksDB's definition.
extern "C" {
uint32_t __real__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc, const char* data, size_t n);
uint32_t __wrap__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc, const char* data, size_t n);
}

namespace mgreg::rocks {
namespace {

thread_local uint64_t calls_on_this_thread = 0;

}  // namespace

uint32_t RocksDbCrc32cExtend(uint32_t crc, const char* data, size_t n) {
  ++calls_on_this_thread;
  // Same convention as RocksDB's Extend: the finished CRC in and out.
  return Crc32c(absl::string_view(data, n), crc);
}

uint32_t LibraryCrc32cExtend(uint32_t crc, const char* data, size_t n) {
  return __real__ZN7rocksdb6crc32c6ExtendEjPKcm(crc, data, n);
}

uint64_t Crc32cCallsOnThisThread() { return calls_on_this_thread; }

bool FastCrc32cInUse() {
  static const bool in_use = [] {
    // A CRC32C computed by RocksDB's code (its file checksum generator).
    std::unique_ptr<rocksdb::FileChecksumGenerator> gen =
        rocksdb::GetFileChecksumGenCrc32cFactory()->CreateFileChecksumGenerator(
            rocksdb::FileChecksumGenContext());
    const uint64_t before = Crc32cCallsOnThisThread();
    gen->Update("probe", 5);
    return Crc32cCallsOnThisThread() > before;
  }();
  return in_use;
}

}  // namespace mgreg::rocks

uint32_t __wrap__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc, const char* data,
                                                size_t n) {
  return mgreg::rocks::RocksDbCrc32cExtend(crc, data, n);
}
