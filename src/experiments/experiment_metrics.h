// An experiment's sufficient statistics from events (docs/experiments.md, "Metrics"): who was
// exposed to which variant (the `$feature_flag_called` events PostHog's SDKs send), and per
// metric and variant the sums the statistics engine (stats/experiment_analysis.h) takes.
//
// Two scans of one snapshot through the per-person driver (query/person_scan.h): the first
// visits only exposure rows (through the blocks' event index) and finds each person's variant
// and first exposure; the second visits the metrics' events once for all metrics, each row
// counted against its person's first exposure. A person is the person of the row as of the
// snapshot, so identity merges after an exposure are seen (a person whose ids were exposed to
// two variants is excluded and counted in multiple_exposures).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "query/query_kind.h"
#include "stats/experiment_analysis.h"

namespace ns {

// The exposure event and its properties, as PostHog's SDKs send them.
inline constexpr const char* kExposureEvent = "$feature_flag_called";
inline constexpr const char* kExposureFlagProperty = "$feature_flag";
inline constexpr const char* kExposureVariantProperty = "$feature_flag_response";

// A per-person value: the number of `event` rows, or the sum of `property` over them (a value
// that is not a finite number counts 0). event "$any" counts every event but exposures.
struct PersonValueSpec {
  std::string event;
  bool sum = false;
  std::string property;  // sum only
};

enum class ExperimentMetricType { kFunnel, kMean, kRatio, kRetention };

struct ExperimentMetricSpec {
  ExperimentMetricType type = ExperimentMetricType::kFunnel;
  std::vector<std::string> steps;  // kFunnel: event names, in order (no "$any")
  PersonValueSpec value;           // kMean; kRatio: the numerator
  PersonValueSpec denominator;     // kRatio
  std::string retention_event;     // kRetention ("$any": any event but exposures)
  int retention_day = 1;           // kRetention: active on local day (exposure day + k)
  // kFunnel, kMean, kRatio: only rows at most this long after the exposure count (0 = until
  // the analysis ends).
  int64_t window_ms = 0;
};

struct ExperimentScanSpec {
  std::string flag_key;
  std::vector<std::string> variants;  // keys, control first
  // Exposures and metric rows in [from_ms, to_ms): the local days [from_day, to_day].
  int32_t from_day = 0, to_day = 0;
  // CUPED: mean and ratio metrics also get each person's value (numerator and denominator)
  // over [exposure - cuped_days, exposure).
  int cuped_days = 0;
  // Mean metrics' per-person values (and pre-exposure values) are capped at this quantile of
  // all included persons' values (0 = no cap; else in (0, 1): 0.99 = the 99th percentile).
  double winsorize_percentile = 0;
};

struct ExperimentMetricData {
  stats::MetricKind kind = stats::MetricKind::kProportion;
  std::vector<stats::VariantStatistics> variants;  // names are the variant keys
  double winsorize_cap = 0;                        // the cap applied (mean metrics with a percentile)
};

struct ExperimentData {
  std::vector<uint64_t> exposed;  // included persons per variant
  uint64_t multiple_exposures = 0;
  // Included persons by the local day of their first exposure: [variant][day - from_day].
  std::vector<std::vector<uint64_t>> exposures_by_day;
  std::vector<ExperimentMetricData> metrics;  // one per spec
};

// REQUIRES: spec.variants has >= 2 distinct keys, from_day <= to_day, metric specs valid (the
// experiment document's validation). DeadlineExceeded when ctx.deadline expires.
StatusOr<ExperimentData> ComputeExperimentData(const ExperimentScanSpec& spec,
                                               const std::vector<ExperimentMetricSpec>& metrics,
                                               const QueryContext& ctx);

}  // namespace ns
