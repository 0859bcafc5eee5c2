// Behavioural cohort definitions: the JSON contract of docs/people.md parsed once into a
// typed tree (validated, errors naming the field), and the ids of the cohorts it refers to.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "query/query_spec.h"

namespace ns {

enum class CountOp { kGte, kLte, kEq };

struct CohortCondition {
  enum class Type {
    kGroup,           // {"op":"and"|"or","conditions":[...]}
    kPerformed,       // did E (filters) count op N times in the range
    kNotPerformed,    // did not do E (filters) in the range
    kSequence,        // did steps[0] then steps[1] ... within window_seconds (in the range)
    kFirstPerformed,  // first did E (ever) within the range
    kProperty,        // a person property condition (the query filter operators)
    kCohort,          // in (or, negate, not in) another cohort
    kRfmSegment,      // in an RFM segment (quintile scoring, as of today)
    kLifecycle,       // in a lifecycle stage (as of today)
    kTier,            // at a level of a tier dimension (people/tiers.h), as of today
    kTag,             // has a rule tag, or a base tag with one of the values (people/tags.h)
  };
  Type type = Type::kGroup;
  std::string field;  // where it is in the definition ("conditions[1].conditions[0]")

  // kGroup
  bool any = false;  // "or"
  std::vector<CohortCondition> conditions;
  // kPerformed, kNotPerformed, kFirstPerformed: the event; kSequence: its steps
  struct Step {
    std::string event;
    std::vector<Filter> filters;
  };
  std::vector<Step> steps;  // one for the single-event kinds
  CountOp count_op = CountOp::kGte;
  int64_t count = 1;
  // The range: local days [from_day, to_day], or the last `last_days` days up to today
  // (today included); neither: all time.
  std::optional<int32_t> from_day, to_day;
  int64_t last_days = 0;
  int64_t window_ms = 0;  // kSequence
  // kProperty
  Filter property;
  // kCohort
  int64_t cohort_id = 0;
  bool negate = false;
  // kRfmSegment: segment key; kLifecycle: stage; kTier: level
  std::string value;
  // kTier: the dimension; kTag: the tag's key and (base tags) the accepted values
  std::string key;
  std::vector<std::string> values;
};

// Parses a definition (the top level is a group). Every field is validated.
StatusOr<CohortCondition> ParseCohortDefinition(const nlohmann::json& j);
// Ids of the cohorts the definition refers to (directly), ascending, without duplicates.
std::vector<int64_t> ReferencedCohorts(const CohortCondition& c);

}  // namespace ns
