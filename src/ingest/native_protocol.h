// The native API (POST /api/v1/events) as one of the collection protocols: the same
// parser contract and the same HTTP path (server/collect_routes.cc) as Segment, PostHog and
// Sensors Data. The body is a JSON array of events, {"events":[...]}, or NDJSON
// (application/x-ndjson); gzip is recognised by its magic bytes whatever the headers say.
// The key is the Bearer token, already authenticated by the route's middleware.
#pragma once

#include "ingest/collect_protocol.h"

namespace ns {

StatusOr<CollectResult> ParseNative(const CollectRequest& req, const TimeZone& tz, int64_t now_ms,
                                    const IngestLimits& limits, const KeyResolver& resolve);

}  // namespace ns
