// Deterministic demo dataset: an e-commerce app's users over the last N days, with the
// event names of DESIGN §3, channels, platforms, cities, anonymous -> registered identity
// merges and person properties, so every query has something to show.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/status.h"
#include "core/time_zone.h"
#include "storage/event.h"

namespace ns {

struct DemoOptions {
  int users = 20'000;
  int days = 90;
  uint64_t seed = 42;
  int32_t last_day = 0;  // local civil day of the last day (usually today)
};

// Calls sink with batches of events (in user order) until all are generated.
// Returns the number of events generated.
StatusOr<uint64_t> GenerateDemo(const DemoOptions& opt, const TimeZone& tz,
                                const std::function<Status(std::vector<Event>&)>& sink);

}  // namespace ns
