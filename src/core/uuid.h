// 128-bit event identifiers. Client ids in canonical UUID form are parsed exactly;
// any other client id string (Segment messageId "ajs-...", $insert_id) is hashed to 128 bits.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ns {

struct Uuid {
  uint64_t hi = 0, lo = 0;
  bool operator==(const Uuid&) const = default;
  bool is_nil() const { return hi == 0 && lo == 0; }
  std::string ToString() const;
  // A parsed canonical UUID (8-4-4-4-12 hex, any case), or the 128-bit hash of id.
  static Uuid FromClientId(std::string_view id);
  static Uuid Random();
};

struct UuidHash {
  size_t operator()(const Uuid& u) const { return u.hi ^ (u.lo * 0x9e3779b97f4a7c15ULL); }
};

}  // namespace ns
