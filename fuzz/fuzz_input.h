// Reads typed values from a fuzz input, front to back; past the end every read returns
// zero / empty, so any input decodes to some sequence of operations (deterministically).
#ifndef MGREG_FUZZ_FUZZ_INPUT_H_
#define MGREG_FUZZ_FUZZ_INPUT_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace mgreg::fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size)
      : data_(reinterpret_cast<const char*>(data)), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  uint8_t Byte() { return pos_ < size_ ? static_cast<uint8_t>(data_[pos_++]) : 0; }
  bool Bool() { return (Byte() & 1) != 0; }
  // One of n choices (n > 0).
  size_t Pick(size_t n) { return Byte() % n; }
  uint32_t U32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | Byte();
    return v;
  }
  // Up to `max` bytes, the length given by the next byte.
  std::string Bytes(size_t max) { return Take(std::min<size_t>(Byte(), max)); }
  std::string Take(size_t n) {
    n = std::min(n, size_ - std::min(pos_, size_));
    std::string out(data_ + pos_, n);
    pos_ += n;
    return out;
  }
  // Everything not read yet.
  absl::string_view Rest() {
    const size_t p = std::min(pos_, size_);
    pos_ = size_;
    return absl::string_view(data_ + p, size_ - p);
  }

 private:
  const char* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace mgreg::fuzz

#endif  // MGREG_FUZZ_FUZZ_INPUT_H_
