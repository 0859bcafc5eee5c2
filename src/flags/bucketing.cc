#include "flags/bucketing.h"

#include <openssl/evp.h>

#include <cstdint>

namespace ns {

double FlagHash(std::string_view key, std::string_view id, std::string_view salt) {
  std::string text;
  text.reserve(key.size() + id.size() + salt.size() + 1);
  text.append(key).push_back('.');
  text.append(id).append(salt);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), md, &len, EVP_sha1(), nullptr);
  // The first 15 hex digits are the first 7.5 bytes: 60 bits.
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | md[i];
  v >>= 4;
  return static_cast<double>(v) / static_cast<double>(0xFFFFFFFFFFFFFFFULL);
}

bool InRollout(std::string_view key, std::string_view id, double percentage) {
  // PostHog excludes when hash > p/100 (flag_matching.py), so the bound itself is in.
  return FlagHash(key, id) <= percentage / 100.0;
}

std::string PickVariant(std::string_view key, std::string_view id, const std::vector<VariantWeight>& variants) {
  const double h = FlagHash(key, id, "variant");
  double lo = 0;
  for (const VariantWeight& v : variants) {
    const double hi = lo + v.percentage / 100.0;
    if (h >= lo && h < hi) return v.key;
    lo = hi;
  }
  return {};
}

}  // namespace ns
