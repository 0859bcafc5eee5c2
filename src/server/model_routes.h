// The models API's routes (model_routes.cc; docs/api.md "Models").
#pragma once

#include <vector>

#include "models/models_service.h"
#include "server/http_types.h"
#include "server/server_context.h"

namespace ns {

std::vector<Route> ModelRoutes(ServerContext& ctx, ModelsService& models);

}  // namespace ns
