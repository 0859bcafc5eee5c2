// The funnel's visualisations beyond its steps (docs/queries.md, "Funnel visualisations"),
// shared by the funnel operator (funnel.cc) and its finishing steps (funnel_viz.cc):
// the entry periods of "viz":"trends", the time-to-convert histogram, and correlation
// analysis, which reads the persons' events a second time once the funnel has said who
// converted and when.
#pragma once

#include <cstdint>
#include <vector>

#include "core/deadline.h"
#include "core/time_zone.h"
#include "query/query_spec.h"
#include "query/results.h"
#include "storage/event_store.h"

namespace ns {

// The entry periods of "viz":"trends": local days [from_day, to_day] cut by interval, the
// first and last clipped to the range (TimeZone::MakeBuckets).
class FunnelPeriods {
 public:
  FunnelPeriods(const TimeZone& tz, int32_t from_day, int32_t to_day, Interval interval);
  size_t size() const { return starts_.size(); }
  // The period of an entry instant. REQUIRES: ts in [start of from_day, end of to_day).
  int32_t Of(int64_t ts) const;
  // End (exclusive, UTC ms) of the entries of period b.
  int64_t EndMs(int32_t b) const { return ends_[static_cast<size_t>(b)]; }
  // The label of period b: its first day (unclipped).
  int32_t LabelDay(int32_t b) const { return labels_[static_cast<size_t>(b)]; }

 private:
  std::vector<int64_t> starts_, ends_;
  std::vector<int32_t> labels_;
};

// The histogram of conversion times `ms` (milliseconds, any order). bins 0 = auto:
// ceil(cbrt(count)) clamped to 1..60, as PostHog does.
FunnelTimeToConvert TimeToConvertHistogram(int from_step, int to_step, std::vector<int64_t> ms, int bins);

// What the funnel says of one person for correlation analysis: not entered, or converted /
// dropped off, with the window of their events that is read: [from, to] inclusive.
struct CorrelationWindow {
  enum Outcome : uint8_t { kNone = 0, kFailure = 1, kSuccess = 2 };
  Outcome outcome = kNone;
  int64_t from = 0, to = 0;
};

// Correlation analysis over `windows` (indexed by person id): counts, for every event name
// and every value of q.correlation_properties, the persons of each outcome who had it in
// their window, and ranks them by odds ratio (docs/queries.md). Reads the blocks with rows
// in [scan_from, scan_to).
StatusOr<FunnelCorrelation> RunFunnelCorrelation(const FunnelQuery& q, const StoreSnapshot& snap,
                                                 const std::vector<CorrelationWindow>& windows, int64_t scan_from,
                                                 int64_t scan_to, const Deadline* deadline);

}  // namespace ns
