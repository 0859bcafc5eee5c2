#include "ingest/sensors_protocol.h"

namespace ns {

StatusOr<CollectResult> ParseSensors(const CollectRequest& req, const TimeZone& tz, int64_t now_ms,
                                     const IngestLimits& limits) {
  return Internal("Sensors protocol: not implemented yet");
}

}  // namespace ns
