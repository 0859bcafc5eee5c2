// The people API's routes (people_routes.cc; docs/people.md).
#pragma once

#include <vector>

#include "people/people_service.h"
#include "server/http_types.h"
#include "server/server_context.h"

namespace ns {

std::vector<Route> PeopleRoutes(ServerContext& ctx, PeopleService& people);

}  // namespace ns
