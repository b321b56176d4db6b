#include "common/crc32c.h"

#include <isa-l.h>

#include <algorithm>
#include <climits>

namespace mgreg {

uint32_t Crc32c(absl::string_view data, uint32_t crc) {
  // ISA-L's crc32_iscsi works on the inverted register and takes an int length.
  uint32_t reg = ~crc;
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    const size_t n = std::min<size_t>(left, 1u << 30);
    reg = crc32_iscsi(reinterpret_cast<unsigned char*>(const_cast<char*>(p)),
                      static_cast<int>(n), reg);
    p += n;
    left -= n;
  }
  return ~reg;
}

}  // namespace mgreg
