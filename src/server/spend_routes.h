// The spend API's routes (spend_routes.cc; docs/api.md "Spend").
#pragma once

#include <vector>

#include "people/spend_store.h"
#include "server/http_types.h"
#include "server/server_context.h"

namespace ns {

std::vector<Route> SpendRoutes(ServerContext& ctx, SpendStore& spend);

}  // namespace ns
