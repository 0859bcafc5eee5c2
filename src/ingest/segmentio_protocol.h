// Segment HTTP Tracking API (https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/):
// POST /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group, /v1/alias, /v1/batch and
// /v1/import (an alias of batch), as sent by analytics.js, @segment/analytics-node and the
// other Segment libraries. The mapping to native events is in docs/collection.md.
// Files and names say "segmentio" because in this code base "segment" alone means a columnar
// event segment (storage/segment.h); wire names (routes, the "segment" metric label) are Segment's.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "core/time_zone.h"
#include "ingest/collect_protocol.h"

namespace ns {

// Parses one Segment request. The call type comes from req.path ("/v1/track" -> track;
// "/v1/batch", "/v1/import" -> a {"batch":[...]} body whose messages carry "type").
// The key is the HTTP Basic user name (write key, empty password) or "writeKey" in the body
// (body wins over nothing, Basic auth wins over the body).
// `resolve` (if set) is called with the key before events are converted (collect_protocol.h).
// Whole-request errors: InvalidArgument (malformed JSON, wrong shape, unknown path, bad
// gzip), ResourceExhausted (body over limits.max_body_bytes after decompression).
// Per-message errors are in result.batch.errors.
// Well-formed bodies are read with simdjson On-Demand straight into events; anything unusual
// goes through ParseSegmentIoDom, which gives every error (ingest/ondemand_json.h).
StatusOr<CollectResult> ParseSegmentIo(const CollectRequest& req, const TimeZone& tz, int64_t now_ms,
                                       const IngestLimits& limits, const KeyResolver& resolve = {});
// The same through nlohmann::json: the reference the fast path is tested against.
StatusOr<CollectResult> ParseSegmentIoDom(const CollectRequest& req, const TimeZone& tz, int64_t now_ms,
                                          const IngestLimits& limits, const KeyResolver& resolve = {});

}  // namespace ns
