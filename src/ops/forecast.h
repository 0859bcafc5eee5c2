// Period-end forecasts, anomaly scores and a back-test for daily KPI series.
//
// Self-contained numerics (no I/O, no dependency beyond core/ and stats/): the operations
// layer turns a KPI's snapshots into a DailySeries and calls these functions. Method,
// choices and back-test figures: docs/forecasting.md and docs/decisions.md ("Forecasting").
//
// Conventions
// - A day is a civil day number in the project's time zone, counted from 1970-01-01
//   (day 0), as in core/time_zone.h. Weekday of day d is (d + 4) % 7, 0 = Sunday
//   (1970-01-01 was a Thursday).
// - A NaN value means "missing day" (no snapshot); it is estimated, never read as 0.
// - All functions are pure and deterministic; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace ns {

// How a KPI's daily values combine into its period value.
enum class PeriodAggregate {
  kSum,   // counts/amounts (new users, GMV): period value = sum of daily values
  kMean,  // rates (conversion): period value = mean of daily values, or sum(v*w)/sum(w)
          // when weights are given (w = the rate's denominator, e.g. visitors that day)
};

// Consecutive daily values starting at `first_day`.
struct DailySeries {
  int32_t first_day = 0;
  std::vector<double> values;  // NaN = missing day
  // Optional, empty or values.size(). Used by kMean only (ignored by kSum): day weights,
  // e.g. the denominator of a rate. Future weights are forecast from their own history.
  std::vector<double> weights;

  int32_t last_day() const { return first_day + static_cast<int32_t>(values.size()) - 1; }
};

struct ForecastInput {
  // History up to the last complete day; may start before the period (more history gives
  // better weekday factors and dispersion: 8 weeks are used when present) and may end
  // before the period starts (forecast of a period not yet begun). Days after
  // period_last_day are ignored.
  DailySeries observed;
  int32_t period_first_day = 0;  // inclusive
  int32_t period_last_day = 0;   // inclusive; REQUIRES: >= period_first_day
  PeriodAggregate aggregate = PeriodAggregate::kSum;
  std::optional<double> target;
  double interval = 0.8;  // central prediction interval probability, in (0, 1)
  bool higher_is_better = true;
};

struct Forecast {
  double observed_so_far = 0;   // aggregate of the period's observed days (kSum: 0 if none;
                                // kMean: NaN if none)
  double projected = 0;         // expected period value at period end
  double lower = 0, upper = 0;  // central `interval` prediction interval of the period value
  double stddev = 0;            // standard deviation of the period value (0 when complete)
  // P(period value >= target) when higher_is_better, P(<= target) otherwise; NaN when no
  // target.
  double prob_reach_target = 0;
  int days_observed = 0;   // period days with a value
  int days_remaining = 0;  // period days still to come or missing (NaN), all forecast
  std::string method;      // "weekday-seasonal level (multiplicative), 8 weeks history"
  // "at this pace 138k ± 9k by 2026-09-30; 12% chance of 150k". Rates whose history lies
  // in [0, 1] are shown as percentages.
  std::string summary;
};

// Errors: InvalidArgument for an empty series, last day < first day, an interval outside
// (0, 1), weights of the wrong length, or a non-finite target.
StatusOr<Forecast> ForecastPeriodEnd(const ForecastInput& in);

struct AnomalyScore {
  double expected = 0;      // value expected for `day` from the trailing 28 days
  double score = 0;         // robust z: (value - expected) / robust sigma; signed
  bool anomalous = false;   // |score| >= threshold
  std::string explanation;  // one line, e.g. "412 vs 980 expected for a Tuesday (z −5.1)"
};

// Scores `value` observed on `day` against days [day-28, day-1] of `trailing` (other days
// are ignored; NaN days skipped): weekday factors (median per weekday, kept only when they
// explain the history), level = median, sigma = 1.4826 * MAD of the deseasonalised
// residuals, floored (sqrt(expected) for integer counts) so a constant history does not
// give infinite scores. Fewer than 7 usable days: score 0, not anomalous.
AnomalyScore ScoreAnomaly(const DailySeries& trailing, int32_t day, double value, double threshold = 3.5);

struct BacktestResult {
  int forecasts = 0;      // number of (period, cut point) forecasts compared
  double mape = 0;        // mean |projected - actual| / |actual| (periods with actual 0 skipped)
  double coverage = 0;    // share of actuals inside [lower, upper]
  double bias = 0;        // mean (projected - actual) / |actual|: > 0 means over-forecast
  double mean_width = 0;  // mean (upper - lower) / |actual|
};

// Rolling-origin back-test: the series is cut into consecutive periods of `period_days`
// from its first day (a trailing partial period is dropped); for each period and each cut
// fraction f the forecast sees the data up to day start + round(f * period_days) - 1 and is
// compared with the actual period value. NaN-valued periods are skipped.
BacktestResult Backtest(const DailySeries& series, int period_days, PeriodAggregate agg, double interval = 0.8,
                        const std::vector<double>& cut_fractions = {1.0 / 3, 2.0 / 3});

}  // namespace ns
