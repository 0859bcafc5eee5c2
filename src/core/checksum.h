// CRC32C (Castagnoli) for WAL records and segment blocks, and a fast 64-bit hash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ns {

// CRC32C of data, continuing from crc (0 to start). Uses SSE4.2 when the CPU has it.
uint32_t Crc32c(const void* data, size_t n, uint32_t crc = 0);
inline uint32_t Crc32c(std::string_view s) { return Crc32c(s.data(), s.size()); }

// 64-bit non-cryptographic hash (for hash tables and uuid derivation), seeded.
uint64_t Hash64(const void* data, size_t n, uint64_t seed = 0);
inline uint64_t Hash64(std::string_view s, uint64_t seed = 0) { return Hash64(s.data(), s.size(), seed); }

inline uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace ns
