#include "core/uuid.h"

#include <random>

#include "core/checksum.h"

namespace ns {
namespace {
int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string Uuid::ToString() const {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (int i = 0; i < 32; i++) {
    if (i == 8 || i == 12 || i == 16 || i == 20) s += '-';
    uint64_t word = i < 16 ? hi : lo;
    int shift = 60 - 4 * (i % 16);
    s += kHex[(word >> shift) & 0xf];
  }
  return s;
}

Uuid Uuid::FromClientId(std::string_view id) {
  if (id.size() == 36 && id[8] == '-' && id[13] == '-' && id[18] == '-' && id[23] == '-') {
    Uuid u;
    int nibbles = 0;
    bool ok = true;
    for (char c : id) {
      if (c == '-') continue;
      int v = HexVal(c);
      if (v < 0) {
        ok = false;
        break;
      }
      uint64_t& w = nibbles < 16 ? u.hi : u.lo;
      w = (w << 4) | static_cast<uint64_t>(v);
      nibbles++;
    }
    if (ok && nibbles == 32) return u;
  }
  return Uuid{Hash64(id, 0x5eed0001), Hash64(id, 0x5eed0002)};
}

Uuid Uuid::Random() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  Uuid u{rng(), rng()};
  u.hi = (u.hi & ~0xf000ULL) | 0x4000ULL;                         // version 4
  u.lo = (u.lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 1
  return u;
}

}  // namespace ns
