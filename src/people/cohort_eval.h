// Evaluates a behavioural cohort definition against one snapshot of the store to the set of
// persons in it (a compressed bitmap of canonical person ids of that snapshot). Semantics of
// every condition: docs/people.md "Cohorts"; tests compare with a naive evaluator.
#pragma once

#include <roaring/roaring.hh>

#include <functional>
#include <memory>

#include "core/status.h"
#include "core/time_zone.h"
#include "people/cohort_definition.h"
#include "people/tiers.h"
#include "query/person_facts.h"
#include "storage/event_store.h"

namespace ns {

struct CohortEvalContext {
  const StoreSnapshot& snap;
  const TimeZone& tz;
  const PeopleSettings& settings;
  int32_t today = 0;  // "last N days" end with this local day (included)
  // The members of another cohort (`field` names the condition in errors): the service
  // answers from its cache and refuses cycles.
  std::function<StatusOr<std::shared_ptr<const Roaring>>(int64_t id, const std::string& field)> cohort;
  // The persons with tag `key`: a rule tag, or a base tag whose value is one of `values`
  // (people/tags.h); the service caches them per store state.
  std::function<StatusOr<std::shared_ptr<const Roaring>>(const std::string& key,
                                                         const std::vector<std::string>& values)>
      tag;
  // Finds a distinct id's did (tiers: the inviter property names one).
  DistinctIdFinder find;
};

StatusOr<Roaring> EvaluateCohort(const CohortCondition& definition, const CohortEvalContext& ctx);

// Every person of the snapshot (canonical ids).
Roaring AllPersons(const PersonTable& persons);

}  // namespace ns
