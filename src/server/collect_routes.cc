#include "server/collect_routes.h"

namespace ns {

std::vector<Route> CollectRoutes(ServerContext& ctx) { return {}; }

}  // namespace ns
