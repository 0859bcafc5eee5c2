// The typed answers of the query kinds. Operators build these; the JSON of docs/queries.md
// is made from them only at the edge (ToJson, called by each kind's `run` in the registry).
// The operations layer (KPI reducers, root cause) and the models to come read these
// structs, never an answer's JSON.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/time_zone.h"
#include "query/query_spec.h"

namespace ns {

// One value of a trends series: a count (an integer in JSON), a measure (a real: sums,
// averages, percentiles), or none (no rows for an average, min, max or percentile: null).
// Counts and measures are kept apart so the answer keeps 5 and 5.0 as they are.
struct Measure {
  enum class Type : uint8_t { kNone, kCount, kReal };
  Type type = Type::kNone;
  uint64_t count = 0;
  double real = 0;

  static Measure None() { return {}; }
  static Measure Count(uint64_t n) { return {Type::kCount, n, 0}; }
  static Measure Real(double x) { return {Type::kReal, 0, x}; }
  bool has_value() const { return type != Type::kNone; }
  double value() const { return type == Type::kCount ? static_cast<double>(count) : real; }  // 0 if none
};

struct TrendsSeriesResult {
  std::string label;
  std::string event;
  Math math = Math::kTotal;
  nlohmann::json breakdown_value;  // null without a breakdown
  std::vector<Measure> values;     // one per bucket of TrendsResult::dates
  // The series computed by the query's formula (then event and math are not meaningful).
  std::optional<std::string> formula;
  // A comparison series ("compare"): its own bucket labels, shifted, aligned by index with
  // TrendsResult::dates (a label is empty where a DST change left the shifted range an hour
  // short); empty for the current series, whose labels are TrendsResult::dates.
  bool previous = false;
  std::vector<std::string> dates;
  // "display":"number": the series' one number over the whole range, computed exactly
  // (distinct persons over the range for dau, not a sum of daily counts).
  std::optional<Measure> aggregated_value;
};

struct TrendsResult {
  std::string timezone;
  Interval interval = Interval::kDay;
  int32_t date_from = 0, date_to = 0;  // local days
  std::vector<std::string> dates;      // bucket labels
  std::vector<TrendsSeriesResult> series;
  TrendsCompare compare = TrendsCompare::kNone;
  int32_t compare_from = 0, compare_to = 0;  // the comparison's local days, when compare is set
  TrendsDisplay display = TrendsDisplay::kSeries;
  std::optional<std::string> formula;
  int smoothing = 1;
  bool cumulative = false;
};

struct FunnelStepResult {
  std::string event;
  std::string label;
  bool optional = false;
  uint64_t count = 0;  // persons who reached the step
  double conversion_from_start = 0;
  double conversion_from_previous = 0;
  std::optional<double> median_seconds_from_previous;  // none on step 0 or without conversions
  std::optional<double> average_seconds_from_previous;
  uint64_t dropoff_count = 0;  // persons who reached the previous step but not this one (steps >= 1)
  std::optional<std::vector<std::string>> dropoff_persons;  // display ids; only in the total
  // Persons who reached the step (display ids), with the query's converted_limit; only in
  // the total.
  std::optional<std::vector<std::string>> converted_persons;
};

struct FunnelBreakdownResult {
  nlohmann::json breakdown_value;
  std::vector<FunnelStepResult> steps;
};

// "viz":"time_to_convert": seconds from from_step to to_step of every unit (person or
// session) that reached to_step, on the path on which it first reached it.
struct FunnelTimeToConvert {
  int from_step = 0, to_step = 0;
  uint64_t count = 0;  // units in the histogram
  std::optional<double> average_seconds, median_seconds;
  int64_t bin_seconds = 0;  // width of every bin; 0 without conversions
  struct Bin {
    int64_t from_seconds = 0;  // [from_seconds, from_seconds + bin_seconds)
    uint64_t count = 0;
  };
  std::vector<Bin> bins;  // empty without conversions
};

// "viz":"trends": per entry period, the funnel of the units that entered in it (the same
// numbers as the funnel run with date_from/date_to set to that period).
struct FunnelTrends {
  Interval interval = Interval::kDay;
  int from_step = 0, to_step = 0;
  std::vector<int32_t> days;                       // first day of each period (its label)
  std::vector<std::vector<uint64_t>> step_counts;  // per period, per step
};

// "viz":"correlation": event names and property values over- or under-represented among
// the persons who converted (reached the last step) against those who entered and did not.
struct FunnelCorrelationEntry {
  std::string event;     // an event name, or empty for a property value
  std::string property;  // the property ("person.city") for a property value
  std::string value;
  uint64_t success_count = 0, failure_count = 0;
  double odds_ratio = 0;
  bool success = false;  // odds_ratio > 1
};
struct FunnelCorrelation {
  uint64_t success_total = 0, failure_total = 0;
  bool skewed = false;  // one side more than 10 times the other (or empty)
  std::vector<FunnelCorrelationEntry> events, properties;
};

struct FunnelResult {
  std::string timezone;
  FunnelOrder order = FunnelOrder::kOrdered;
  int64_t window_seconds = 0;
  int32_t date_from = 0, date_to = 0;
  std::vector<FunnelStepResult> steps;
  std::vector<FunnelBreakdownResult> breakdowns;  // largest first, empty without a breakdown
  FunnelViz viz = FunnelViz::kSteps;
  FunnelAggregate aggregate_by = FunnelAggregate::kPerson;
  std::optional<BreakdownAttribution> attribution;  // set with a breakdown
  int attribution_step = 0;
  std::optional<FunnelTimeToConvert> time_to_convert;
  std::optional<FunnelTrends> trends;
  std::optional<FunnelCorrelation> correlation;
};

struct RetentionCohortResult {
  int32_t day = 0;                                // first day of the cohort's period
  std::optional<nlohmann::json> breakdown_value;  // set only when the query has a breakdown
  uint64_t size = 0;
  std::vector<uint64_t> values;  // persons returning in period k, k = 0..periods-1
  // values[k] / size (reference total), or values[k] / values[k-1] (reference previous;
  // k = 0: / size); none when the denominator is 0.
  std::vector<std::optional<double>> percentages;
};

struct RetentionResult {
  std::string timezone;
  Interval period = Interval::kDay;
  int periods = 0;
  RetentionMode mode = RetentionMode::kExact;
  bool first_time = true;
  int32_t date_from = 0, date_to = 0;
  RetentionReference reference = RetentionReference::kTotal;
  int min_occurrences = 1;
  RetentionWindow time_window = RetentionWindow::kCalendar;
  std::vector<RetentionCohortResult> cohorts;  // by (day, breakdown group)
  // Per period k: the cohorts' percentages averaged with their sizes as weights, over the
  // cohorts (size > 0, percentage defined) whose period k has begun by the query's today;
  // none when there is no such cohort. mean_weights[k]: the sum of those sizes.
  std::vector<std::optional<double>> mean;
  std::vector<uint64_t> mean_weights;
};

// The response JSON of each kind (docs/queries.md), without "took_ms".
nlohmann::json ToJson(const TrendsResult& r);
nlohmann::json ToJson(const FunnelResult& r);
nlohmann::json ToJson(const RetentionResult& r);

std::string_view MathName(Math m);  // "total", "dau", ...

}  // namespace ns
