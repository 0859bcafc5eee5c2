// The lifecycle kind's plain path, for tests: the per-person driver over every row in
// person-time order, which RunLifecycle uses only when the range is too long for its
// day-bitmap pass (lifecycle.cc). Tests compare the two on random data.
#pragma once

#include "query/person_models.h"

namespace ns {

StatusOr<LifecycleResult> RunLifecyclePlain(const LifecycleQuery& q, const QueryContext& ctx);

}  // namespace ns
