// A feature flag as stored and served (docs/flags.md): its key, rollout, release conditions
// (PostHog's `filters.groups`: groups of person-property and cohort conditions, each with its
// own rollout and an optional variant override), multivariate variants with weights summing to
// 100, and a JSON payload per variant ("true" for a boolean flag). Parsed and validated once,
// at the edge, with errors naming the field; read back from meta.db through the same parser.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace ns {

// One condition of a group. type "person": the person property `key` compared by `op` with
// `value` (PostHog's operators: exact, is_not, icontains, not_icontains, regex, not_regex, gt,
// gte, lt, lte, is_set, is_not_set). type "cohort": membership of cohort `value` (an id), op
// "in" or "not_in".
struct FlagCondition {
  std::string key;
  std::string type = "person";
  std::string op = "exact";
  nlohmann::json value;
};

// A release condition group: every condition holds, then `rollout_percentage` of those
// persons (by the flag's hash) get the flag. Without its own rollout a group takes the flag's.
struct FlagGroup {
  std::vector<FlagCondition> properties;
  std::optional<double> rollout_percentage;
  std::string variant;  // a variant every matching person gets ("" = by weight)
};

struct FlagVariant {
  std::string key;
  std::string name;
  int rollout_percentage = 0;  // weights of a flag's variants sum to 100
};

struct FlagDefinition {
  std::string key;  // letters, digits, '-' and '_' (1..400), unique in the project
  std::string name;
  std::string description;
  bool active = true;
  // Who gets the flag when it has no groups, and in a group without its own rollout.
  double rollout_percentage = 100;
  std::vector<FlagGroup> groups;
  std::vector<FlagVariant> variants;                   // empty: a boolean flag
  nlohmann::json payloads = nlohmann::json::object();  // variant key (or "true") -> any JSON
};

// Validates a whole definition. Also accepts PostHog's shape ("filters": {"groups",
// "multivariate": {"variants"}, "payloads"}) so flags can be copied over from PostHog.
StatusOr<FlagDefinition> ParseFlagDefinition(const nlohmann::json& body);
// A PATCH: the fields of `patch` replace those of `base`, then the whole is validated.
StatusOr<FlagDefinition> PatchFlagDefinition(const FlagDefinition& base, const nlohmann::json& patch);
nlohmann::json FlagDefinitionJson(const FlagDefinition& f);
// Whether `key` is a valid flag or variant key.
bool ValidFlagKey(const std::string& key);

}  // namespace ns
