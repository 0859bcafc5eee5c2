// The analysis of an A/B experiment from per-variant sufficient statistics: frequentist
// (Welch's t, delta method for relative differences), sequential (always-valid intervals) and
// Bayesian (Gaussian effect posterior), CUPED, SRM, multiple-comparison corrections and power.
// The numbers agree with GrowthBook's open-source stats engine (gbstats) on its published test
// cases (tests/unit/experiment_analysis_test.cc); docs/experiments.md has the formulas.
//
// Every caller (POST /api/v1/experiments/analyze, an experiment's results from events, a
// journey's treated-vs-holdout lift) goes through AnalyzeExperiment, so one set of formulas
// answers all of them.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace ns::stats {

// What a person contributes: a value (revenue per user), a 0/1 conversion, or a numerator and
// a denominator whose ratio of sums is the metric (revenue / orders).
enum class MetricKind { kMean, kProportion, kRatio };
enum class DifferenceType { kRelative, kAbsolute };
enum class AnalysisMethod { kFrequentist, kSequential, kBayesian };
// Frequentist and sequential only: the alternative hypothesis on (treatment - control).
enum class Alternative { kTwoSided, kGreater, kLess };
enum class Correction { kNone, kHolm, kBonferroni };

// One variant's sufficient statistics over its exposed persons (n of them).
struct VariantStatistics {
  std::string name;
  double n = 0;
  // kMean, kProportion: the per-person value; for kProportion sum = conversions and
  // sum_squares is ignored (a 0/1 value's square is itself). kRatio: the numerator.
  double sum = 0;
  double sum_squares = 0;
  // kRatio only: the denominator and the sum over persons of numerator * denominator.
  double denominator_sum = 0;
  double denominator_sum_squares = 0;
  double main_denominator_sum_product = 0;
  // CUPED (regression adjustment) when has_pre: the same person's value in the pre-exposure
  // window and the sum over persons of value * pre_value.
  bool has_pre = false;
  double pre_sum = 0;
  double pre_sum_squares = 0;
  double main_pre_sum_product = 0;
};

struct AnalysisOptions {
  DifferenceType difference = DifferenceType::kRelative;
  AnalysisMethod method = AnalysisMethod::kFrequentist;
  Alternative alternative = Alternative::kTwoSided;
  double alpha = 0.05;  // 1 - confidence level of intervals
  // Sequential: gbstats' "sequential tuning parameter" (the expected sample size the
  // always-valid interval is tightest at).
  double sequential_tuning = 5000;
  // Bayesian: a Gaussian prior on the effect (in the difference's units); flat unless proper.
  bool prior_proper = false;
  double prior_mean = 0;
  double prior_variance = 1;
  // Several treatments against control: how their p-values and intervals are adjusted.
  Correction correction = Correction::kNone;
  // Winsorisation of kMean values is done by whoever builds the statistics (it needs the raw
  // values); this only records it for the answer.
  double winsorize_percentile = 0;  // 0 = none
  // The planned traffic split for the SRM check, one weight per variant (empty = equal).
  std::vector<double> traffic_weights;
};

// Each variant on its own.
struct VariantSummary {
  std::string name;
  double n = 0;
  double mean = 0;      // the metric's value: mean, rate or ratio (CUPED-adjusted if has_pre)
  double variance = 0;  // of the per-person value (for kRatio: of the ratio by the delta method)
};

// A treatment against control (variant 0).
struct Effect {
  std::string name;  // the treatment's
  bool ok = true;    // false: too few data or zero variance; `error` says which
  std::string error;
  double expected = 0;             // the estimated difference (relative: a fraction, 0.05 = +5%)
  double ci_low = 0, ci_high = 0;  // NaN bounds as +-infinity for one-sided intervals
  // Frequentist and sequential (NaN for Bayesian); after `correction` when there is one.
  double p_value = 0;
  double p_value_unadjusted = 0;
  // Bayesian (NaN otherwise).
  double chance_to_win = 0;
  double risk_control = 0;    // expected loss of choosing control
  double risk_treatment = 0;  // expected loss of choosing the treatment
};

struct ExperimentAnalysis {
  std::vector<VariantSummary> variants;
  std::vector<Effect> effects;  // one per variant after the first
  double srm_p_value = 1;       // chi-square against traffic_weights
  bool srm_flagged = false;     // srm_p_value < 0.001 with at least 100 persons in all
};

// InvalidArgument (naming the field, e.g. "variants[1].n") for fewer than two variants,
// negative or non-finite counts, or a sum of squares below what its sum allows.
StatusOr<ExperimentAnalysis> AnalyzeExperiment(MetricKind kind, const std::vector<VariantStatistics>& variants,
                                               const AnalysisOptions& options);

// Power: the persons needed per variant to detect a relative effect `mde` (0.05 = 5%) on a
// metric with this mean and per-person variance, at `alpha` two-sided and `power`; and the
// days that takes at `daily_persons` exposed persons a day split over `variant_count`.
struct PowerEstimate {
  double persons_per_variant = 0;
  double days = 0;
};
StatusOr<PowerEstimate> EstimatePower(double mean, double variance, double mde, double alpha, double power,
                                      double daily_persons, int variant_count);

}  // namespace ns::stats
