// The cohorts of the people layer as the operations layer sees them: a scenario's key user
// group may name one ({"cohort_id": N}). ops/ does not depend on people/: the server wires a
// CohortDirectory that asks the PeopleService in (Scenarios::SetCohorts,
// server/people_routes.h), as the query layer gets its CohortSource; tests pass a fake.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/status.h"

namespace ns {

struct CohortSummary {
  int64_t id = 0;
  std::string name;
  std::optional<int64_t> size;  // persons now; nullopt when not asked for, or not evaluable
  int64_t as_of_ms = 0;         // when the size was taken (0 without a size)
};

class CohortDirectory {
 public:
  virtual ~CohortDirectory() = default;
  // Cohort `id` of `project`; NotFound when it has none. `with_size`: its current size,
  // evaluated on the store as it is now (cached per store state by the people layer).
  // Threading: called from request threads concurrently; may run inside a MetaDb::Tx.
  virtual StatusOr<CohortSummary> Find(const std::string& project, int64_t id, bool with_size) = 0;
};

}  // namespace ns
