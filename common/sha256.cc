#include "common/sha256.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

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

#if defined(__x86_64__)
__attribute__((target("avx"))) void ZeroUpper() { _mm256_zeroupper(); }
#endif

// Called before every SHA-256 pass: VZEROUPPER, on a CPU with AVX. The SHA extensions
// exist only in legacy (non-VEX) SSE encoding, as do OpenSSL's SHA-NI code and ours
// below. While a thread's AVX upper halves are dirty (code elsewhere in the process used
// 256/512-bit registers and left no VZEROUPPER, and a new thread starts with its
// creator's register state), each such instruction waits on a false dependency: the
// client's paired hashing ran at 1.2 GB/s instead of 2.9 and OpenSSL's at 1.7 instead of
// 2.0 (bench/RESULTS.md, 2026-12-08). Every vector register is caller-saved, so clearing
// the upper halves here takes nothing from a caller.
void CleanAvxUpperState() {
#if defined(__x86_64__)
  static const bool avx = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx") != 0;
  }();
  if (avx) ZeroUpper();
#endif
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
  CleanAvxUpperState();
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
  CleanAvxUpperState();
  Check(EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()),
                   &len, EVP_sha256(), nullptr));
  return out;
}

std::string Sha256Hex(absl::string_view data) { return BytesToHex(Sha256Raw(data)); }

namespace {

#if defined(__x86_64__)
// SHA-256 on the SHA extensions (SHA-NI), for N messages at once, their rounds
// interleaved. The state of one message is two vectors, (a, b, e, f) and (c, d, g, h)
// in the order SHA256RNDS2 takes them; the message schedule is kept four words per
// vector (FIPS 180-4, 6.2.2).
alignas(16) constexpr uint32_t kRoundConstants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

struct ShaNiState {
  __m128i abef;
  __m128i cdgh;
};

#define MGREG_SHA_NI_TARGET __attribute__((target("sha,sse4.1,ssse3")))

MGREG_SHA_NI_TARGET ShaNiState ShaNiInit() {
  // H(0): a..h = 6a09e667 bb67ae85 3c6ef372 a54ff53a 510e527f 9b05688c 1f83d9ab 5be0cd19.
  return {
      _mm_set_epi32(0x6a09e667, static_cast<int>(0xbb67ae85), 0x510e527f,
                    static_cast<int>(0x9b05688c)),
      _mm_set_epi32(0x3c6ef372, static_cast<int>(0xa54ff53a), 0x1f83d9ab, 0x5be0cd19)};
}

// Four rounds (group I of 16) of each of the N messages: message words W[4I..4I+3]
// into w[n][I % 4] (loaded for I < 4, else from the four before), then the rounds.
template <int N, int I>
MGREG_SHA_NI_TARGET __attribute__((always_inline)) inline void ShaNiQuad(
    ShaNiState* state, __m128i (&w)[N][4], const char* const* data, size_t offset) {
  const __m128i k =
      _mm_load_si128(reinterpret_cast<const __m128i*>(&kRoundConstants[4 * I]));
  // Unrolled, so that the N messages' instructions interleave and w stays in registers.
#pragma GCC unroll 4
  for (int n = 0; n < N; ++n) {
    if constexpr (I < 4) {
      const __m128i byte_swap =
          _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
      w[n][I] = _mm_shuffle_epi8(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(data[n] + offset + 16 * I)),
          byte_swap);
    } else {
      // w[n][I % 4] holds W[4I-16..], the next slots W[4I-12..], W[4I-8..], W[4I-4..].
      const __m128i w7 = _mm_alignr_epi8(w[n][(I + 3) % 4], w[n][(I + 2) % 4], 4);
      w[n][I % 4] = _mm_sha256msg2_epu32(
          _mm_add_epi32(_mm_sha256msg1_epu32(w[n][I % 4], w[n][(I + 1) % 4]), w7),
          w[n][(I + 3) % 4]);
    }
    const __m128i wk = _mm_add_epi32(w[n][I % 4], k);
    state[n].cdgh = _mm_sha256rnds2_epu32(state[n].cdgh, state[n].abef, wk);
    state[n].abef =
        _mm_sha256rnds2_epu32(state[n].abef, state[n].cdgh, _mm_shuffle_epi32(wk, 0x0e));
  }
}

template <int N, int... I>
MGREG_SHA_NI_TARGET __attribute__((always_inline)) inline void ShaNiBlock(
    ShaNiState* state, const char* const* data, size_t offset,
    std::integer_sequence<int, I...>) {
  __m128i w[N][4];
  (ShaNiQuad<N, I>(state, w, data, offset), ...);
}

// Runs `blocks` 64-byte blocks of each of the N messages `data[i]` into `state[i]`.
template <int N>
MGREG_SHA_NI_TARGET void ShaNiBlocks(ShaNiState* state, const char* const* data,
                                     size_t blocks) {
  for (size_t blk = 0; blk < blocks; ++blk) {
    ShaNiState saved[N];
    for (int n = 0; n < N; ++n) saved[n] = state[n];
    ShaNiBlock<N>(state, data, 64 * blk, std::make_integer_sequence<int, 16>());
    for (int n = 0; n < N; ++n) {
      state[n].abef = _mm_add_epi32(state[n].abef, saved[n].abef);
      state[n].cdgh = _mm_add_epi32(state[n].cdgh, saved[n].cdgh);
    }
  }
}

// The last block or two of a message of `size` bytes whose whole blocks are hashed:
// its remaining bytes, the 0x80 marker, zeros and the length in bits (big-endian).
size_t PadTail(absl::string_view message, char (&tail)[128]) {
  const size_t rest = message.size() % 64;
  std::memset(tail, 0, sizeof(tail));
  std::memcpy(tail, message.data() + message.size() - rest, rest);
  tail[rest] = static_cast<char>(0x80);
  const size_t len = rest < 56 ? 64 : 128;
  const uint64_t bits = static_cast<uint64_t>(message.size()) * 8;
  for (int i = 0; i < 8; ++i) tail[len - 1 - i] = static_cast<char>(bits >> (8 * i));
  return len / 64;
}

MGREG_SHA_NI_TARGET std::string ShaNiDigest(const ShaNiState& state) {
  uint32_t abef[4], cdgh[4];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(abef), state.abef);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(cdgh), state.cdgh);
  // Lanes from the lowest: (f, e, b, a) and (h, g, d, c).
  const uint32_t h[8] = {abef[3], abef[2], cdgh[3], cdgh[2],
                         abef[1], abef[0], cdgh[1], cdgh[0]};
  std::string out(32, '\0');
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 4; ++j) out[4 * i + j] = static_cast<char>(h[i] >> (24 - 8 * j));
  }
  return out;
}

std::pair<std::string, std::string> ShaNiPair(absl::string_view a, absl::string_view b) {
  ShaNiState state[2] = {ShaNiInit(), ShaNiInit()};
  const size_t blocks_a = a.size() / 64, blocks_b = b.size() / 64;
  const size_t both = std::min(blocks_a, blocks_b);
  const char* both_data[2] = {a.data(), b.data()};
  ShaNiBlocks<2>(state, both_data, both);
  const char* rest_a = a.data() + 64 * both;
  const char* rest_b = b.data() + 64 * both;
  ShaNiBlocks<1>(&state[0], &rest_a, blocks_a - both);
  ShaNiBlocks<1>(&state[1], &rest_b, blocks_b - both);
  char tail_a[128], tail_b[128];
  const char* tails[2] = {tail_a, tail_b};
  const size_t tail_blocks_a = PadTail(a, tail_a);
  const size_t tail_blocks_b = PadTail(b, tail_b);
  ShaNiBlocks<1>(&state[0], &tails[0], tail_blocks_a);
  ShaNiBlocks<1>(&state[1], &tails[1], tail_blocks_b);
  return {ShaNiDigest(state[0]), ShaNiDigest(state[1])};
}

bool CpuHasShaNi() {
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  const bool sha = (ebx & (1u << 29)) != 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  const bool ssse3 = (ecx & (1u << 9)) != 0;
  const bool sse41 = (ecx & (1u << 19)) != 0;
  return sha && ssse3 && sse41;
}
#endif

}  // namespace

std::pair<std::string, std::string> Sha256RawPair(absl::string_view a,
                                                  absl::string_view b) {
#if defined(__x86_64__)
  static const bool sha_ni = CpuHasShaNi();
  if (sha_ni) {
    CleanAvxUpperState();
    return ShaNiPair(a, b);
  }
#endif
  return {Sha256Raw(a), Sha256Raw(b)};
}

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
