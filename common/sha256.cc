#include "common/sha256.h"

#include <openssl/sha.h>

namespace mgreg {

struct Sha256::State {
  SHA256_CTX ctx;
};

Sha256::Sha256() : state_(std::make_unique<State>()) { SHA256_Init(&state_->ctx); }
Sha256::Sha256(const Sha256& other) : state_(std::make_unique<State>(*other.state_)) {}
Sha256& Sha256::operator=(const Sha256& other) {
  *state_ = *other.state_;
  return *this;
}
Sha256::~Sha256() = default;

void Sha256::Update(absl::string_view data) {
  SHA256_Update(&state_->ctx, data.data(), data.size());
}

std::array<uint8_t, 32> Sha256::Digest() const {
  SHA256_CTX copy = state_->ctx;
  std::array<uint8_t, 32> out;
  SHA256_Final(out.data(), &copy);
  return out;
}

std::string Sha256::HexDigest() const {
  auto d = Digest();
  return BytesToHex(absl::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

std::string Sha256Raw(absl::string_view data) {
  std::string out(32, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string Sha256Hex(absl::string_view data) { return BytesToHex(Sha256Raw(data)); }

std::string BytesToHex(absl::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    const auto b = static_cast<uint8_t>(bytes[i]);
    out[2 * i] = kDigits[b >> 4];
    out[2 * i + 1] = kDigits[b & 0xf];
  }
  return out;
}

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

bool HexToBytes(absl::string_view hex, std::string* bytes) {
  if (hex.size() % 2 != 0) return false;
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = HexValue(hex[2 * i]);
    const int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<char>((hi << 4) | lo);
  }
  *bytes = std::move(out);
  return true;
}

bool IsSha256Hex(absl::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace mgreg
