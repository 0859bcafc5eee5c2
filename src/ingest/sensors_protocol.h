// Sensors Data (神策) collection, as sent by sa-sdk-node, sa-sdk-javascript and the mobile
// SDKs: GET or POST /sa with a form (or query) `data_list=<base64(gzip(JSON array))>` and
// `gzip=1`, or `data=<base64(JSON record)>` (gzip optional, per the `gzip` field). The
// mapping to native events is in docs/collection.md.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "core/time_zone.h"
#include "ingest/collect_protocol.h"

namespace ns {

// Parses one Sensors Data request. The key is the `token` query parameter (a Northstar write
// key); result.project_name is the `project` query parameter, which the HTTP layer maps to a
// project through ServerOptions::sensors_projects when there is no token.
// `resolve` (if set) is called with the key before events are converted (collect_protocol.h).
// Whole-request errors: InvalidArgument (no data/data_list, bad base64, bad gzip, malformed
// JSON), ResourceExhausted (payload over the limit after decompression). Per-record errors
// are in result.batch.errors.
StatusOr<CollectResult> ParseSensors(const CollectRequest& req, const TimeZone& tz, int64_t now_ms,
                                     const IngestLimits& limits, const KeyResolver& resolve = {});

}  // namespace ns
