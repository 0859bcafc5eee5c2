// Query requests (JSON <-> structs). The JSON shapes are a contract shared with the
// console, the ops layer and scripts (docs/queries.md): add fields, never rename.
// Parsing validates everything once and names the offending field in errors.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/time_zone.h"
#include "query/formula.h"
#include "storage/event.h"

class Roaring;  // CRoaring's C++ bitmap (roaring/roaring.hh)

namespace ns {

constexpr std::string_view kAnyEvent = "$any";
constexpr size_t kMaxFunnelSteps = 30;

enum class FilterOp { kEq, kNeq, kIn, kNotIn, kGt, kGte, kLt, kLte, kContains, kNotContains, kIsSet, kIsNotSet };

struct Filter {
  std::string property;  // without the "person." prefix
  bool person = false;   // a person property ("person.city"), or a cohort
  FilterOp op = FilterOp::kEq;
  std::vector<PropValue> values;  // one for most ops, several for in / not_in
  // A cohort filter ({"cohort": ID, "op": "in"|"not_in"}): the person is (not) in cohort ID.
  // `members` is bound after parsing, against the query's snapshot (BindCohorts,
  // query/cohort_source.h); `field` names the filter in errors.
  int64_t cohort = 0;
  std::shared_ptr<const Roaring> members;
  std::string field;
};

// A property to group by: event property or person property ("person.city").
struct PropertyRef {
  std::string name;
  bool person = false;
  std::string display;  // as written in the request
};

// What a trends series measures per interval (docs/queries.md "Trends").
enum class Math {
  kTotal,
  kDau,
  kSum,
  kAvg,
  kMin,
  kMax,
  kP50,
  kP90,
  kWeeklyActive,     // distinct persons in the 7 local days ending at the interval's end
  kMonthlyActive,    // ... in the 28 local days
  kAvgPerPerson,     // events per person, over the persons with at least one
  kMedianPerPerson,  // median of each person's count of events
  kP90PerPerson,     // 90th percentile of each person's count
};
// Distinct persons over a rolling window of local days (weekly_active, monthly_active).
inline int RollingDays(Math m) { return m == Math::kWeeklyActive ? 7 : m == Math::kMonthlyActive ? 28 : 0; }

struct TrendsSeries {
  std::string event;
  Math math = Math::kTotal;
  std::string property;  // for sum/avg/min/max/p50/p90
  std::vector<Filter> filters;
  std::string label;
};

enum class TrendsCompare { kNone, kPreviousPeriod, kPreviousYear };
enum class TrendsDisplay { kSeries, kNumber };

struct TrendsQuery {
  std::vector<TrendsSeries> series;
  int32_t from_day = 0, to_day = 0;
  Interval interval = Interval::kDay;
  std::vector<Filter> filters;
  std::optional<PropertyRef> breakdown;
  size_t breakdown_limit = 25;
  // Post-processing (docs/queries.md "Trends"): each may be combined with the others, except
  // cumulative with smoothing or with a rolling (weekly/monthly active) math.
  std::optional<Formula> formula;  // one more series computed from the others
  bool formula_only = false;       // answer only the formula's series
  TrendsCompare compare = TrendsCompare::kNone;
  int smoothing = 1;  // moving average over this many intervals (1: none)
  bool cumulative = false;
  TrendsDisplay display = TrendsDisplay::kSeries;
};

enum class FunnelOrder { kOrdered, kStrict, kUnordered };

struct FunnelStep {
  std::string event;
  std::vector<Filter> filters;
  bool optional = false;
  std::string label;
  // Only the person's first-ever event matching the step (its event and filters, over all
  // stored history, not only the date range) can fill it.
  bool first_ever = false;
};

struct FunnelExclusion {
  std::string event;
  std::vector<Filter> filters;
  int from_step = 0, to_step = 1;  // 0-based step indexes, from < to
};

// What a funnel answers besides its steps (docs/queries.md, "Funnel visualisations").
enum class FunnelViz { kSteps, kTimeToConvert, kTrends, kCorrelation };
// Which event of a person's funnel gives the breakdown value.
enum class BreakdownAttribution { kFirstTouch, kLastTouch, kStep };
// Who goes through the funnel: persons, or sessions ($session_id, else 30 minutes apart).
enum class FunnelAggregate { kPerson, kSession };

struct FunnelQuery {
  std::vector<FunnelStep> steps;
  int64_t window_ms = 14LL * 86'400'000;
  FunnelOrder order = FunnelOrder::kOrdered;
  int32_t from_day = 0, to_day = 0;
  std::vector<Filter> filters;         // apply to every step
  std::vector<PropertyRef> breakdown;  // up to 3
  size_t breakdown_limit = 25;
  std::vector<FunnelExclusion> exclusions;
  size_t dropoff_limit = 100;  // persons listed per step; 0 = all
  // The persons who reached each step, listed (the smallest person ids first) only when
  // set: 0 = all. Unset, the answer has no converted_persons and the scan keeps no list.
  std::optional<size_t> converted_limit;

  FunnelViz viz = FunnelViz::kSteps;
  // time_to_convert and trends: the two steps measured (0-based, from < to; default first
  // and last).
  int from_step = 0, to_step = 0;
  int bins = 0;                        // time_to_convert: 0 = auto (cube root of the count, 1..60)
  Interval interval = Interval::kDay;  // trends: the entry periods
  BreakdownAttribution attribution = BreakdownAttribution::kFirstTouch;
  int attribution_step = 0;  // with kStep
  FunnelAggregate aggregate_by = FunnelAggregate::kPerson;
  // correlation: properties whose values are correlated besides event names ("person.x":
  // person property), event names left out, and entries listed per direction.
  std::vector<PropertyRef> correlation_properties;
  std::vector<std::string> correlation_exclude_events;
  size_t correlation_limit = 10;
};

enum class RetentionMode { kExact, kOnOrAfter };
// What a cohort's percentages are relative to: its size, or the previous period's value.
enum class RetentionReference { kTotal, kPrevious };
// Calendar periods of the project's zone, or windows of 24 h (7 x 24 h for weeks) counted
// from each person's anchoring start event.
enum class RetentionWindow { kCalendar, k24h };

struct RetentionQuery {
  std::string start_event;
  std::vector<Filter> start_filters;
  std::string return_event = std::string(kAnyEvent);
  std::vector<Filter> return_filters;
  Interval period = Interval::kDay;
  int periods = 11;
  int32_t from_day = 0, to_day = 0;
  bool first_time = true;
  RetentionMode mode = RetentionMode::kExact;
  std::vector<Filter> filters;
  std::optional<PropertyRef> breakdown;
  size_t breakdown_limit = 25;
  RetentionReference reference = RetentionReference::kTotal;
  int min_occurrences = 1;  // return events needed in a period for it to count
  RetentionWindow time_window = RetentionWindow::kCalendar;
  // The project's current local day: `mean` counts a cohort's period k once it has begun
  // by then. Not a request field; the kind sets it (INT32_MAX: every period counts).
  int32_t today = INT32_MAX;
};

// Parsers of each kind's request (the "kind" field itself is matched by the registry,
// query/query_kind.h). Every field is validated and unknown fields are refused.
StatusOr<TrendsQuery> ParseTrendsQuery(const nlohmann::json& j);
StatusOr<FunnelQuery> ParseFunnelQuery(const nlohmann::json& j);
StatusOr<RetentionQuery> ParseRetentionQuery(const nlohmann::json& j);
StatusOr<std::vector<Filter>> ParseFilters(const nlohmann::json& j, const std::string& field);
// One cohort filter {"cohort": ID, "op": "in"|"not_in"}; `field` names it in errors.
StatusOr<Filter> ParseCohortFilter(const nlohmann::json& j, const std::string& field);
// A request's top-level "cohort" (an id, or {"cohort": ID, "op": ...}) appended to filters.
Status AppendCohortField(const nlohmann::json& j, std::vector<Filter>* filters);

}  // namespace ns
