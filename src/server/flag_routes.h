// The routes of feature flags (flag_routes.cc; docs/api.md "Feature flags", docs/flags.md):
// the definitions under /api/v1/flags (viewers read, operators and admins change), the native
// evaluation POST /api/v1/flags/evaluate (any key of the project, the write key included: it
// answers flag values, never definitions), and PostHog's evaluation endpoints /flags and
// /decide that its SDKs call, authenticated by the project's write key in the body.
#pragma once

#include <vector>

#include "flags/flags_service.h"
#include "server/http_types.h"
#include "server/server_context.h"

namespace ns {

std::vector<Route> FlagRoutes(ServerContext& ctx, FlagsService& flags);

}  // namespace ns
