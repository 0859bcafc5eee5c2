// Calendar arithmetic in a project's IANA time zone (Howard Hinnant's date library;
// GCC 12 has no std::chrono::tzdb). A "day" is always a local calendar day.
// Civil days are counted from 1970-01-01 (day 0), independent of any zone.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace date {
class time_zone;
}

namespace ns {

constexpr int64_t kMsPerDay = 86'400'000;

// Day number of an instant counted in UTC (floor division, also before 1970): the storage
// partition of an event.
inline int32_t UtcDay(int64_t ms) {
  return static_cast<int32_t>(ms >= 0 ? ms / kMsPerDay : -((-ms + kMsPerDay - 1) / kMsPerDay));
}
// Wall-clock time, UTC milliseconds since the epoch.
int64_t NowMs();

enum class Interval { kHour, kDay, kWeek, kMonth };
StatusOr<Interval> ParseInterval(std::string_view s);
std::string_view IntervalName(Interval i);

// One time bucket of a query: [start_ms, end_ms) in UTC milliseconds, and its label.
struct Bucket {
  int64_t start_ms;
  int64_t end_ms;
  std::string label;
};

class TimeZone {
 public:
  static StatusOr<TimeZone> Load(std::string_view name);
  const std::string& name() const { return name_; }

  // Local civil day of an instant.
  int32_t LocalDay(int64_t ms) const;
  // UTC ms of the first instant of local civil day `day` (midnight, or the first valid
  // time after a DST gap).
  int64_t DayStartMs(int32_t day) const;
  // UTC ms of local date-time (day, seconds since local midnight); earliest if ambiguous.
  int64_t LocalToUtcMs(int32_t day, int64_t ms_of_day) const;
  // Local wall-clock time of an instant, "YYYY-MM-DD HH:MM:SS".
  std::string FormatLocal(int64_t ms) const;

  // Buckets covering local days [from_day, to_day] (inclusive) at the given interval.
  // Week buckets start on Monday, month buckets on the 1st; the first and last bucket are
  // clipped to the range, their labels are the (unclipped) period start.
  std::vector<Bucket> MakeBuckets(int32_t from_day, int32_t to_day, Interval interval) const;
  // Start day of the period containing `day` (Monday of its week, 1st of its month).
  static int32_t PeriodStartDay(int32_t day, Interval interval);
  // Index of the period containing `day` counted from the period containing `base_day`.
  static int32_t PeriodsBetween(int32_t base_day, int32_t day, Interval interval);

 private:
  const date::time_zone* zone_ = nullptr;
  std::string name_;
};

// "YYYY-MM-DD" -> civil day; precise error naming the field otherwise.
StatusOr<int32_t> ParseDate(std::string_view s, std::string_view field);
std::string FormatDate(int32_t day);
// Epoch ms -> "YYYY-MM-DDTHH:MM:SS.mmmZ".
std::string FormatIsoUtc(int64_t ms);

// Parses an ISO-8601 timestamp ("2025-01-02T03:04:05.678+08:00", "...Z", also a space
// instead of 'T'). Without an offset the time is taken as local time in tz.
StatusOr<int64_t> ParseIsoTimestamp(std::string_view s, const TimeZone& tz);

}  // namespace ns
