// The people API's routes (people_routes.cc; docs/people.md).
#pragma once

#include <memory>
#include <vector>

#include "ops/ops_service.h"
#include "people/people_service.h"
#include "server/http_types.h"
#include "server/server_context.h"

namespace ns {

std::vector<Route> PeopleRoutes(ServerContext& ctx, PeopleService& people);

// Joins the people layer's cohorts to the operations layer (which does not depend on it): a
// scenario's key user group names a cohort that exists and shows its name and size now,
// and a cohort a scenario names cannot be deleted (409 naming the scenarios). Keep the
// answer alive while both serve. REQUIRES: before the server starts.
std::unique_ptr<CohortDirectory> ConnectCohortsToScenarios(PeopleService& people, OpsService& ops);

}  // namespace ns
