#include "ingest/segment_protocol.h"

namespace ns {

StatusOr<CollectResult> ParseSegment(const CollectRequest& req, const TimeZone& tz, int64_t now_ms,
                                     const IngestLimits& limits) {
  return Internal("Segment protocol: not implemented yet");
}

}  // namespace ns
