// Evaluating one flag for one person, as PostHog's FeatureFlagMatcher does (docs/flags.md):
// groups with a variant override are tried first, then the others, each in its order; the
// first group whose conditions all hold and whose rollout lets the person in decides. The
// answer carries PostHog's reason codes (condition_match, out_of_rollout_bound,
// no_condition_match) and the index of the deciding group. Pure: the caller supplies the
// person's properties and cohort memberships.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "flags/flag_definition.h"

namespace ns {

// A person property by name (nullopt: the person has none).
using FlagPropertyLookup = std::function<std::optional<nlohmann::json>(const std::string& key)>;
// Whether the person is in cohort `id` (NotFound for a cohort that no longer exists).
using FlagCohortLookup = std::function<StatusOr<bool>(int64_t id)>;

struct FlagOutcome {
  bool enabled = false;
  std::string variant;              // "" for a boolean flag or when disabled
  nlohmann::json payload;           // null when none
  std::string reason;               // condition_match | out_of_rollout_bound | no_condition_match | disabled
  int condition_index = -1;         // the deciding group (-1: none)
  std::string Description() const;  // "Matched condition set 1", as PostHog words it
};

// `id` is what is hashed (the person's first identified distinct id, or the distinct id).
StatusOr<FlagOutcome> EvaluateFlag(const FlagDefinition& flag, std::string_view id, const FlagPropertyLookup& props,
                                   const FlagCohortLookup& cohorts);

// One person-property condition against a value (PostHog's match_property): texts compare
// case-insensitively, gt/gte/lt/lte numerically when both sides are numbers.
bool MatchPropertyCondition(const FlagCondition& c, const std::optional<nlohmann::json>& value);

}  // namespace ns
