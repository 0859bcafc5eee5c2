// Wire-compatible collection endpoints: Segment HTTP Tracking API (/v1/*), PostHog capture
// (/batch, /capture, /e, /i/v0/e, /track, /engage) and Sensors Data (/sa). Each protocol is
// mapped to native events by its parser in src/ingest/; docs/collection.md has the tables.
#pragma once

#include <vector>

#include "server/http_types.h"
#include "server/server_context.h"

namespace ns {

std::vector<Route> CollectRoutes(ServerContext& ctx);

}  // namespace ns
