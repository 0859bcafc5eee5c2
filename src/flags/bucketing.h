// PostHog's bucketing of feature flags, reproduced exactly so that a person gets the same
// answer from Northstar as from PostHog's own evaluation (docs/flags.md, "Bucketing"):
//
//   hash(key, id, salt) = int(first 15 hex digits of sha1("<key>.<id><salt>")) / 0xFFFFFFFFFFFFFFF
//
// A rollout of p% lets a person in when hash(key, id, "") <= p/100; the variant is the one
// whose cumulative weight range [lo, hi) holds hash(key, id, "variant"). Checked against
// PostHog's own test vectors in tests/unit/flags_test.cc.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ns {

// The bucket of `id` for flag `key` in [0, 1].
double FlagHash(std::string_view key, std::string_view id, std::string_view salt = "");

// Whether `id` falls inside a rollout of `percentage` (0..100) of flag `key`.
bool InRollout(std::string_view key, std::string_view id, double percentage);

struct VariantWeight {
  std::string key;
  double percentage = 0;  // 0..100; a flag's weights sum to 100
};

// The variant of `id` for flag `key` ("" when the weights do not cover its bucket, which
// cannot happen when they sum to 100).
std::string PickVariant(std::string_view key, std::string_view id, const std::vector<VariantWeight>& variants);

}  // namespace ns
