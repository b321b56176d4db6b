// CRC32C (Castagnoli) with ISA-L's hardware implementation, and LevelDB's mask,
// as TensorFlow stores it in BundleEntryProto.crc32c.
#ifndef MGREG_COMMON_CRC32C_H_
#define MGREG_COMMON_CRC32C_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace mgreg {

// Standard CRC32C of `data`, continuing from `crc` (0 for a fresh start).
uint32_t Crc32c(absl::string_view data, uint32_t crc = 0);

// LevelDB/TensorFlow masking of a CRC stored next to the data it covers.
inline uint32_t MaskCrc32c(uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}
inline uint32_t UnmaskCrc32c(uint32_t masked) {
  const uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

}  // namespace mgreg

#endif  // MGREG_COMMON_CRC32C_H_
