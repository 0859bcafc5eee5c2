// The operations API (docs/ops-api.md), one route table per area: accounts, scenarios
// (actions, exports, evaluations, SOPs), monitoring (KPIs, alerts, channels, reminders, jobs).
// Every route names the least Access it needs; the auth middleware (server/auth.h) checks
// it: a session cookie (+ X-CSRF-Token on changes) or a secret key (Bearer nss_...).
#pragma once

#include <vector>

#include "ops/ops_service.h"
#include "server/http_types.h"
#include "server/server_context.h"

namespace ns {

std::vector<Route> AccountRoutes(ServerContext& ctx, OpsService& ops);     // account_routes.cc
std::vector<Route> ScenarioRoutes(ServerContext& ctx, OpsService& ops);    // scenario_routes.cc
std::vector<Route> MonitoringRoutes(ServerContext& ctx, OpsService& ops);  // monitoring_routes.cc
// All of them.
std::vector<Route> OpsRoutes(ServerContext& ctx, OpsService& ops);

}  // namespace ns
