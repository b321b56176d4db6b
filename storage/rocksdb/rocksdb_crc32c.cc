// RocksDB's CRC32C on the CPU's CRC32 instruction (rocksdb_crc32c.h).
#include "storage/rocksdb/rocksdb_crc32c.h"

#include <cstring>
#include <memory>

#include "rocksdb/file_checksum.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

// rocksdb::crc32c::Extend(unsigned int, char const*, unsigned long), as the linker's
// --wrap names it: RocksDB's calls go to __wrap_, and __real_ is RocksDB's definition.
extern "C" {
uint32_t __real__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc, const char* data, size_t n);
uint32_t __wrap__ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc, const char* data, size_t n);
}

namespace mgreg::rocks {
namespace {

thread_local uint64_t calls_on_this_thread = 0;

#if defined(__x86_64__)
// CRC32C (Castagnoli, reflected; ~crc in and out, as RocksDB's Extend), 8 bytes per
// instruction.
__attribute__((target("sse4.2"))) uint32_t HardwareExtend(uint32_t crc, const char* data,
                                                          size_t n) {
  uint64_t c = static_cast<uint32_t>(~crc);
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, data, 8);
    c = _mm_crc32_u64(c, word);
    data += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n > 0) {
    c32 = _mm_crc32_u8(c32, static_cast<unsigned char>(*data));
    ++data;
    --n;
  }
  return ~c32;
}
#endif

bool CpuHasSse42() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
#else
  return false;
#endif
}

Crc32cExtendFn Choose() {
#if defined(__x86_64__)
  if (CpuHasSse42()) return &HardwareExtend;
#endif
  return &LibraryCrc32cExtend;
}

}  // namespace

uint32_t RocksDbCrc32cExtend(uint32_t crc, const char* data, size_t n) {
  static const Crc32cExtendFn impl = Choose();
  ++calls_on_this_thread;
  return impl(crc, data, n);
}

uint32_t LibraryCrc32cExtend(uint32_t crc, const char* data, size_t n) {
  return __real__ZN7rocksdb6crc32c6ExtendEjPKcm(crc, data, n);
}

uint64_t Crc32cCallsOnThisThread() { return calls_on_this_thread; }

bool HardwareCrc32cInUse() {
  static const bool in_use = [] {
    if (!CpuHasSse42()) return false;
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
