// The routes of experiments (experiment_routes.cc; docs/api.md, "Experiments"): viewers read
// experiments and their results; operators and admins create, change and delete them.
#pragma once

#include <vector>

#include "experiments/experiments_service.h"
#include "server/http_types.h"
#include "server/server_context.h"

namespace ns {

std::vector<Route> ExperimentRoutes(ServerContext& ctx, ExperimentsService& experiments);

}  // namespace ns
