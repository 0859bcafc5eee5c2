// Cohorts as the query operators see them: sets of person ids under a snapshot. The people
// layer (people/cohort_service.h) owns cohort definitions and implements CohortSource; the
// operators only read the bound member sets, so query/ does not depend on people/.
#pragma once

#include <roaring/roaring.hh>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "core/time_zone.h"
#include "query/query_spec.h"
#include "storage/event_store.h"

namespace ns {

class CohortSource {
 public:
  virtual ~CohortSource() = default;
  // The persons of cohort `id` under `snap` (canonical person ids of that snapshot);
  // NotFound naming the cohort if there is none.
  virtual StatusOr<std::shared_ptr<const Roaring>> Members(int64_t id, const StoreSnapshot& snap,
                                                           const TimeZone& tz) const = 0;
};

// Binds the member sets of the cohort filters among `filters` (no-op without any). Without
// a source (a caller outside the server), a cohort filter is FailedPrecondition.
Status BindCohorts(std::vector<Filter>& filters, const CohortSource* source, const StoreSnapshot& snap,
                   const TimeZone& tz);

}  // namespace ns
