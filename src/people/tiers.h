// The four tier dimensions of the operations teams' layering model, each a person attribute
// as of a day with documented, configurable rules (docs/people.md "Tiers"; the thresholds
// are people settings):
//   value     high / medium / potential   spend percentile among payers and orders; seen, never paid: potential
//   activity  core / ordinary / silent    active days among the last 30
//   need      loyal / impulse / demand    favourite category share of orders; minutes from first view to purchase
//   social    spreader / sharer / onlooker   invitees brought (inviter property), share events
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/time_zone.h"
#include "query/person_facts.h"
#include "storage/event_store.h"

namespace ns {

enum class TierDimension { kValue = 0, kActivity, kNeed, kSocial };
constexpr int kTierDimensions = 4;

// "value" -> kValue; false if unknown.
bool ParseTierDimension(std::string_view s, TierDimension* out);
std::string_view TierDimensionName(TierDimension d);
// The levels of a dimension, in order ("high", "medium", "potential").
const std::array<std::string_view, 3>& TierLevels(TierDimension d);

struct PersonTiers {
  int32_t as_of_day = 0;
  // Per dimension, per person id: the level's index in TierLevels, -1 if none (no events
  // before the as-of day, or for need: never paid, or no product on the payments).
  std::array<std::vector<int8_t>, kTierDimensions> level;
  int Level(TierDimension d, uint32_t person) const {
    const auto& v = level[static_cast<size_t>(d)];
    return person < v.size() ? v[person] : -1;
  }
};

// Finds the did of a distinct id (EventStore::FindDistinctId): the inviter property holds one.
using DistinctIdFinder = std::function<int64_t(std::string_view)>;

// Cached per (snapshot state, settings, day), like the facts.
std::shared_ptr<const PersonTiers> GetPersonTiers(const StoreSnapshot& snap, const TimeZone& tz,
                                                  const PeopleSettings& settings, int32_t as_of_day,
                                                  const DistinctIdFinder& find);

}  // namespace ns
