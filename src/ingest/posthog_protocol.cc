#include "ingest/posthog_protocol.h"

namespace ns {

StatusOr<CollectResult> ParsePostHog(const CollectRequest& req, const TimeZone& tz, int64_t now_ms,
                                     const IngestLimits& limits) {
  return Internal("PostHog protocol: not implemented yet");
}

}  // namespace ns
