// Tags (docs/people.md "Tags"): a tag is a cohort underneath.
//  - Base tags (attribute tags): one value per person computed from their events and
//    properties ("platform" = android, "price_band" = 100-199, "favourite_category" = 美妆).
//  - Rule tags (dynamic): a built-in behavioural cohort definition ("carted_not_paid_24h",
//    "silent_30d", "coupon_hunter", ...), evaluated like any cohort, so always current.
//    User-defined rule tags are cohorts created with "tag": true (people_service.h).
// Every tag is computed by one function over a row source, so the person page (one
// person's rows) and a cohort condition (every row) share the rule.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/time_zone.h"
#include "people/tiers.h"
#include "query/person_facts.h"
#include "storage/event_store.h"

namespace ns {

struct BaseTagContext {
  const StoreSnapshot& snap;
  const TimeZone& tz;
  const PeopleSettings& settings;
  const PersonFacts& facts;  // as of the day
  const PersonTiers& tiers;
  // Rows before facts.end_ms: every row, or one person's (the person page).
  std::optional<uint32_t> only_person;
  // With only_person: that person's rows, found once for all tags (PersonRows); null: the
  // tag finds them itself.
  const std::vector<std::pair<const Block*, uint32_t>>* person_rows = nullptr;
};

// The rows of one person before end_ms (every distinct id of the person).
std::vector<std::pair<const Block*, uint32_t>> PersonRows(const StoreSnapshot& snap, uint32_t person, int64_t end_ms);
// Sink of a tag's values: (person, value); persons without a value are not reported.
using TagSink = std::function<void(uint32_t person, const std::string& value)>;

struct BaseTag {
  const char* key;
  const char* label_zh;
  const char* label_en;
  const char* rule;  // how the value is computed, for the docs and GET /api/v1/tags
  std::function<void(const BaseTagContext&, const TagSink&)> compute;
};
const std::vector<BaseTag>& BaseTags();
const BaseTag* FindBaseTag(std::string_view key);

struct RuleTag {
  const char* key;
  const char* label_zh;
  const char* label_en;
  const char* definition;  // a cohort definition (JSON text)
};
const std::vector<RuleTag>& RuleTags();
const RuleTag* FindRuleTag(std::string_view key);

// The catalogue as JSON (GET /api/v1/tags).
nlohmann::json TagCatalogue();

}  // namespace ns
