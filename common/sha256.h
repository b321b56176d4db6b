// Incremental SHA-256 (OpenSSL) and hex helpers.
#ifndef MGREG_COMMON_SHA256_H_
#define MGREG_COMMON_SHA256_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace mgreg {

// Computes a SHA-256 over data given in pieces. Copyable, so a caller can keep the
// state at a point (e.g. a chunk boundary) and continue from it later.
// Not thread-safe.
class Sha256 {
 public:
  Sha256();
  Sha256(const Sha256& other);
  Sha256& operator=(const Sha256& other);
  ~Sha256();

  void Update(absl::string_view data);
  // The digest of everything given so far; the object can keep being updated.
  std::array<uint8_t, 32> Digest() const;
  // Digest() as 64 lower-case hex characters.
  std::string HexDigest() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// SHA-256 of `data`, lower-case hex.
std::string Sha256Hex(absl::string_view data);
// SHA-256 of `data`, 32 raw bytes.
std::string Sha256Raw(absl::string_view data);
// {Sha256Raw(a), Sha256Raw(b)}. On a CPU with the SHA extensions both are computed
// together, their rounds interleaved: one SHA-256's rounds form a chain of dependent
// instructions that leaves the CPU's SHA unit idle most of the time, so two chains on one
// core run at up to twice the speed of one (bench/RESULTS.md, issue 17); elsewhere, one
// after the other with OpenSSL. For a server that receives several chunks at once.
std::pair<std::string, std::string> Sha256RawPair(absl::string_view a,
                                                  absl::string_view b);

// Lower-case hex of raw bytes, and back. HexToBytes returns false on a bad string.
std::string BytesToHex(absl::string_view bytes);
bool HexToBytes(absl::string_view hex, std::string* bytes);
// True if `s` is 64 lower-case hex characters.
bool IsSha256Hex(absl::string_view s);

}  // namespace mgreg

#endif  // MGREG_COMMON_SHA256_H_
