// The operations API (docs/ops-api.md): accounts, scenarios, actions, KPIs, alerts,
// notification channels, evaluations, SOPs, exports. Every route names the least role it
// needs; callers authenticate with a session cookie (+ X-CSRF-Token on changes) or a
// secret key (Authorization: Bearer nss_...).
#pragma once

#include <vector>

#include "ops/ops_service.h"
#include "server/http_types.h"
#include "server/server_context.h"

namespace ns {

std::vector<Route> OpsRoutes(ServerContext& ctx, OpsService& ops);

}  // namespace ns
