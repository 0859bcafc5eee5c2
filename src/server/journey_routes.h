// The journeys API (journey_routes.cc; docs/api.md "Journeys", docs/automation.md).
#pragma once

#include <vector>

#include "automation/journeys.h"
#include "server/http_types.h"
#include "server/server_context.h"

namespace ns {

std::vector<Route> JourneyRoutes(ServerContext& ctx, JourneyService& journeys);

}  // namespace ns
