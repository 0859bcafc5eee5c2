// PostHog capture API, as sent by posthog-js, posthog-node and the other PostHog SDKs:
// /batch, /capture, /e, /i/v0/e, /track, /engage (GET or POST, with or without a trailing
// slash). The mapping to native events is in docs/collection.md.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "core/time_zone.h"
#include "ingest/collect_protocol.h"

namespace ns {

// Parses one PostHog request. The payload is the body (POST) or the `data` query parameter
// (GET); it may be JSON, gzip (detected by its magic bytes or ?compression=gzip|gzip-js),
// base64, or a form `data=<base64 or JSON>`; ?compression=lz64 is refused
// (InvalidArgument). The payload is one event, {"batch":[...]} (with an optional top-level
// api_key and sent_at) or a bare array. The key is `api_key`, `token` or `$token` at the
// top level, in an event, or in an event's properties (first found), or ?api_key= / ?token=.
// `resolve` (if set) is called with the key before events are converted (collect_protocol.h).
// Whole-request errors: InvalidArgument, ResourceExhausted (body over the limit after
// decompression). Per-event errors are in result.batch.errors.
StatusOr<CollectResult> ParsePostHog(const CollectRequest& req, const TimeZone& tz, int64_t now_ms,
                                     const IngestLimits& limits, const KeyResolver& resolve = {});

}  // namespace ns
