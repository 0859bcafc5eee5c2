#include "server/ops_routes.h"

namespace ns {

std::vector<Route> OpsRoutes(ServerContext& ctx, OpsService& ops) {
  std::vector<Route> all;
  for (auto* table : {&AccountRoutes, &ScenarioRoutes, &MonitoringRoutes})
    for (Route& r : table(ctx, ops)) all.push_back(std::move(r));
  return all;
}

}  // namespace ns
