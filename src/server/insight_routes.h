// The routes of saved insights and dashboards (insight_routes.cc; docs/api.md, "Insights and
// dashboards"): viewers read, run and export; operators and admins change.
#pragma once

#include <vector>

#include "insights/insights_service.h"
#include "server/http_types.h"
#include "server/server_context.h"

namespace ns {

std::vector<Route> InsightRoutes(ServerContext& ctx, InsightsService& insights);

}  // namespace ns
