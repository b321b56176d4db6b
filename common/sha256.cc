#include "common/sha256.h"

#include <openssl/evp.h>

#include <cstdlib>

namespace mgreg {

// OpenSSL 3's EVP interface (the SHA256_* functions are deprecated there).
struct Sha256::State {
  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  ~State() { EVP_MD_CTX_free(ctx); }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
};

namespace {
// OpenSSL fails these only on allocation failure, which we treat like new's.
void Check(int ok) {
  if (ok != 1) std::abort();
}
}  // namespace

Sha256::Sha256() : state_(std::make_unique<State>()) {
  Check(EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr));
}
Sha256::Sha256(const Sha256& other) : state_(std::make_unique<State>()) {
  Check(EVP_MD_CTX_copy_ex(state_->ctx, other.state_->ctx));
}
Sha256& Sha256::operator=(const Sha256& other) {
  if (this != &other) Check(EVP_MD_CTX_copy_ex(state_->ctx, other.state_->ctx));
  return *this;
}
Sha256::~Sha256() = default;

void Sha256::Update(absl::string_view data) {
  Check(EVP_DigestUpdate(state_->ctx, data.data(), data.size()));
}

std::array<uint8_t, 32> Sha256::Digest() const {
  State copy;
  Check(EVP_MD_CTX_copy_ex(copy.ctx, state_->ctx));
  std::array<uint8_t, 32> out;
  unsigned int len = 0;
  Check(EVP_DigestFinal_ex(copy.ctx, out.data(), &len));
  return out;
}

std::string Sha256::HexDigest() const {
  auto d = Digest();
  return BytesToHex(absl::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

std::string Sha256Raw(absl::string_view data) {
  std::string out(32, '\0');
  unsigned int len = 0;
  Check(EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()),
                   &len, EVP_sha256(), nullptr));
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
