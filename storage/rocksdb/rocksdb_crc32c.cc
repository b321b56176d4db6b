// RocksDB's CRC32C on the CPU's CRC32 instruction (rocksdb_crc32c.h).
#include "storage/rocksdb/rocksdb_crc32c.h"

#include <cstring>
#include <memory>
#include <utility>

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
// The CRC32 instruction has a latency of 3 cycles and a throughput of 1: one stream of
// 8-byte steps runs at a third of its speed. So a long buffer is cut into three
// consecutive strips, each CRC'd on its own (interleaved), and the strips' CRCs are
// joined: CRC32C is linear, so crc(A B) = shift(crc(A), |B| zero bytes) ^ crc0(B),
// where crc0 starts from 0 and the shift is a fixed 32x32 bit matrix per strip length,
// applied through four 256-entry tables (Mark Adler's crc32c.c method). On the raw
// register (no inversion) throughout.
constexpr uint32_t kPoly = 0x82f63b78;  // CRC32C, reflected
constexpr size_t kLong = 8192;          // strip lengths
constexpr size_t kShort = 256;

uint32_t Gf2MatrixTimes(const uint32_t* mat, uint32_t vec) {
  uint32_t sum = 0;
  for (; vec != 0; vec >>= 1, ++mat) {
    if (vec & 1) sum ^= *mat;
  }
  return sum;
}

void Gf2MatrixSquare(uint32_t* square, const uint32_t* mat) {
  for (int n = 0; n < 32; ++n) square[n] = Gf2MatrixTimes(mat, mat[n]);
}

// The tables that shift a raw CRC over `len` zero bytes.
struct ShiftTables {
  uint32_t t[4][256];

  explicit ShiftTables(size_t len) {
    uint32_t odd[32], even[32];
    odd[0] = kPoly;  // the operator for one zero bit
    for (uint32_t n = 1, row = 1; n < 32; ++n, row <<= 1) odd[n] = row;
    Gf2MatrixSquare(even, odd);  // two zero bits
    Gf2MatrixSquare(odd, even);  // four zero bits
    // Square on: 8 zero bits (one byte), 16, ...; multiply in the ones `len` has.
    uint32_t op[32];
    bool have = false;
    uint32_t* cur = odd;
    uint32_t* next = even;
    while (true) {
      Gf2MatrixSquare(next, cur);  // 2^(k+3) zero bits: 2^k zero bytes
      std::swap(cur, next);
      if (len & 1) {
        if (!have) {
          std::memcpy(op, cur, sizeof(op));
          have = true;
        } else {
          uint32_t product[32];
          for (int n = 0; n < 32; ++n) product[n] = Gf2MatrixTimes(cur, op[n]);
          std::memcpy(op, product, sizeof(op));
        }
      }
      len >>= 1;
      if (len == 0) break;
    }
    for (uint32_t n = 0; n < 256; ++n) {
      t[0][n] = Gf2MatrixTimes(op, n);
      t[1][n] = Gf2MatrixTimes(op, n << 8);
      t[2][n] = Gf2MatrixTimes(op, n << 16);
      t[3][n] = Gf2MatrixTimes(op, n << 24);
    }
  }

  uint32_t Shift(uint32_t crc) const {
    return t[0][crc & 0xff] ^ t[1][(crc >> 8) & 0xff] ^ t[2][(crc >> 16) & 0xff] ^
           t[3][crc >> 24];
  }
};

__attribute__((target("sse4.2"))) inline uint64_t Step(uint64_t c, const char* p) {
  uint64_t word;
  std::memcpy(&word, p, 8);
  return _mm_crc32_u64(c, word);
}

// Three strips of `strip` bytes from `*data` onwards, as long as they fit.
__attribute__((target("sse4.2"))) uint64_t ThreeWay(uint64_t c0, const char** data,
                                                    size_t* n, size_t strip,
                                                    const ShiftTables& shift) {
  while (*n >= 3 * strip) {
    const char* p = *data;
    const char* end = p + strip;
    uint64_t c1 = 0, c2 = 0;
    for (; p < end; p += 8) {
      c0 = Step(c0, p);
      c1 = Step(c1, p + strip);
      c2 = Step(c2, p + 2 * strip);
    }
    c0 = shift.Shift(static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1);
    c0 = shift.Shift(static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c2);
    *data += 3 * strip;
    *n -= 3 * strip;
  }
  return c0;
}

// CRC32C (Castagnoli, reflected; ~crc in and out, as RocksDB's Extend).
__attribute__((target("sse4.2"))) uint32_t HardwareExtend(uint32_t crc, const char* data,
                                                          size_t n) {
  static const ShiftTables* const long_shift = new ShiftTables(kLong);
  static const ShiftTables* const short_shift = new ShiftTables(kShort);
  uint64_t c = static_cast<uint32_t>(~crc);
  c = ThreeWay(c, &data, &n, kLong, *long_shift);
  c = ThreeWay(c, &data, &n, kShort, *short_shift);
  while (n >= 8) {
    c = Step(c, data);
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
