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
};

StatusOr<Roaring> EvaluateCohort(const CohortCondition& definition, const CohortEvalContext& ctx);

// Every person of the snapshot (canonical ids).
Roaring AllPersons(const PersonTable& persons);

}  // namespace ns
