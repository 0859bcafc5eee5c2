// The analysis of an A/B experiment from per-variant sufficient statistics: frequentist
// (Welch's t, delta method for relative differences), sequential (always-valid intervals) and
// Bayesian (Gaussian effect posterior), CUPED, SRM, multiple-comparison corrections and power.
// The numbers agree with GrowthBook's open-source stats engine (gbstats) on its published test
// cases (tests/unit/experiment_analysis_test.cc); docs/statistics.md has the formulas.
//
// Every caller (POST /api/v1/experiments/analyze, an experiment's results from events, a
// journey's treated-vs-holdout lift) goes through AnalyzeExperiment, so one set of formulas
// answers all of them. All functions are pure and thread-safe.
#pragma once

#include <string>
#include <utility>
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

// One variant's sufficient statistics over its exposed persons (n of them). Every sum is over
// those persons; "pre" is the same person's value in the pre-exposure window (CUPED).
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
  // window and the sum over persons of value * pre_value. kProportion: the pre value is a
  // 0/1 conversion too (pre_sum_squares ignored). kRatio: pre_* is the numerator's.
  bool has_pre = false;
  double pre_sum = 0;
  double pre_sum_squares = 0;
  double main_pre_sum_product = 0;
  // kRatio with has_pre: the denominator's pre-window value and the remaining cross products
  // (the 4x4 covariance of numerator/denominator x post/pre needs all six).
  double pre_denominator_sum = 0;
  double pre_denominator_sum_squares = 0;
  double denominator_pre_denominator_sum_product = 0;  // sum of denominator * pre_denominator
  double pre_pre_denominator_sum_product = 0;          // sum of pre (numerator) * pre_denominator
  double main_pre_denominator_sum_product = 0;         // sum of numerator * pre_denominator
  double pre_denominator_sum_product = 0;              // sum of pre (numerator) * denominator
};

// Builds a variant's sums one person at a time, as a results-from-events pass does: call one
// Add per exposed person (the same overload for every person of the experiment), then
// Statistics(). Winsorised metrics pass values already capped (WinsorizationCap).
class VariantAccumulator {
 public:
  void Add(double value);              // kMean; kProportion with 0 or 1
  void Add(double value, double pre);  // with CUPED: the pre-window value
  void AddRatio(double numerator, double denominator);
  void AddRatio(double numerator, double denominator, double pre_numerator, double pre_denominator);
  VariantStatistics Statistics(std::string name) const;

 private:
  VariantStatistics s_;
};

struct AnalysisOptions {
  DifferenceType difference = DifferenceType::kRelative;
  AnalysisMethod method = AnalysisMethod::kFrequentist;
  Alternative alternative = Alternative::kTwoSided;
  double alpha = 0.05;  // 1 - confidence level of intervals; in (0, 1)
  // Sequential: gbstats' "sequential tuning parameter" (the total sample size the
  // always-valid interval is tightest at).
  double sequential_tuning = 5000;
  // Bayesian: a Gaussian prior on the effect (in the difference's units: a fraction for
  // relative differences); flat (improper) unless prior_proper.
  bool prior_proper = false;
  double prior_mean = 0;
  double prior_variance = 1;
  // Several treatments against control: how their p-values and intervals are adjusted
  // (frequentist and sequential only; Bayesian answers are left as they are).
  Correction correction = Correction::kNone;
  // Winsorisation of kMean values is done by whoever builds the statistics (it needs the raw
  // values: WinsorizationCap below); this only records it for the answer.
  double winsorize_percentile = 0;  // 0 = none
  // The planned traffic split for the SRM check, one weight per variant (empty = equal).
  std::vector<double> traffic_weights;
};

// Each variant on its own, as observed (before any CUPED adjustment, whose coefficient belongs
// to a control-treatment pair: the adjusted estimate is in Effect).
struct VariantSummary {
  std::string name;
  double n = 0;
  double mean = 0;      // the metric's value: mean, rate or ratio of sums
  double variance = 0;  // of the per-person value (for kRatio: of the ratio by the delta method)
};

// A treatment against control (variant 0).
struct Effect {
  std::string name;  // the treatment's
  bool ok = true;    // false: no answer; `error` says why and every number below is NaN
  // When !ok: "ZERO_NEGATIVE_VARIANCE" (fewer than 2 persons or no variance in a variant),
  // "ZERO_NEGATIVE_BASELINE_VARIATION" (control's value is 0),
  // "ALPHA_GREATER_THAN_0.5_FOR_SEQUENTIAL_ONE_SIDED_TEST". With ok, only
  // "NUMERICAL_PVALUE_NOT_CONVERGED": a one-sided sequential p-value the bisection did not
  // find (NaN; the interval stands). gbstats' messages, so the two engines can be compared.
  std::string error;
  double expected = 0;             // the estimated difference (relative: a fraction, 0.05 = +5%)
  double ci_low = 0, ci_high = 0;  // -inf / +inf for the open side of one-sided intervals
  double standard_error = 0;       // of `expected` (Bayesian: the posterior's)
  double cuped_theta = 0;          // the CUPED coefficient used (0: none)
  // Frequentist and sequential (NaN for Bayesian); after `correction` when there is one.
  double p_value = 0;
  double p_value_unadjusted = 0;
  double ci_low_unadjusted = 0, ci_high_unadjusted = 0;
  // Bayesian (NaN otherwise).
  double chance_to_win = 0;   // P(effect > 0)
  double risk_control = 0;    // expected loss of choosing control: E[max(effect, 0)]
  double risk_treatment = 0;  // expected loss of choosing the treatment: E[max(-effect, 0)]
};

struct ExperimentAnalysis {
  std::vector<VariantSummary> variants;
  std::vector<Effect> effects;  // one per variant after the first
  double srm_p_value = 1;       // chi-square against traffic_weights
  bool srm_flagged = false;     // srm_p_value < 0.001 with at least 100 persons in all
};

// InvalidArgument (naming the field, e.g. "variants[1].n") for fewer than two variants,
// negative or non-finite numbers, a conversion count above n, a sum of squares below what its
// sum allows, has_pre on some variants only, or options out of range ("alpha",
// "sequential_tuning", "prior_variance", "traffic_weights").
StatusOr<ExperimentAnalysis> AnalyzeExperiment(MetricKind kind, const std::vector<VariantStatistics>& variants,
                                               const AnalysisOptions& options);

// gbstats' SRM check: Pearson's chi-square of the observed persons against the planned
// weights, over the variants with persons and a positive weight (1 when fewer than two).
double SampleRatioMismatchPValue(const std::vector<double>& persons, const std::vector<double>& weights);

// Multiple comparisons: Holm's step-down or Bonferroni's adjusted p-values, in input order.
std::vector<double> AdjustPValues(const std::vector<double>& p_values, Correction correction);

// GrowthBook's adjusted interval for an adjusted p-value: the normal interval around
// `expected` whose two-sided p-value is `adjusted_p`, at level 1 - alpha ((-inf, inf) when
// adjusted_p rounds to 1). AnalyzeExperiment uses it only where it is wider than the original.
std::pair<double, double> AdjustedConfidenceInterval(double adjusted_p, double expected, double alpha);

// Winsorisation: the value at `percentile` (in (0, 1], e.g. 0.99) of `values` (the smallest
// value with at least that fraction of values at or below it); values above it are capped to
// it before the sums are taken. +inf for an empty list.
double WinsorizationCap(std::vector<double> values, double percentile);

// Power (GrowthBook's power calculator, frequentist): a relative effect `mde` (0.05 = +5%) on a
// metric with this mean and per-person variance, two-sided at `alpha`, with `variant_count`
// variants of equal size; sequential_tuning > 0 widens the interval as sequential testing does.
// - PowerAt: the power with `total_persons` exposed persons in all variants.
// - MinimumDetectableEffect: the smallest relative effect detected with `power` (NaN when
//   there are too few persons for any effect).
// - EstimatePower: the persons needed per variant to reach `power`, and the days that takes
//   at `daily_persons` exposed persons a day split over `variant_count`.
double PowerAt(double mean, double variance, double mde, double alpha, double total_persons, int variant_count,
               double sequential_tuning = 0);
double MinimumDetectableEffect(double mean, double variance, double power, double alpha, double total_persons,
                               int variant_count, double sequential_tuning = 0);
struct PowerEstimate {
  double persons_per_variant = 0;
  double days = 0;   // 0 when daily_persons is 0
  double power = 0;  // reached with persons_per_variant (>= the asked power)
};
// InvalidArgument naming "mean", "variance", "mde", "alpha", "power", "daily_persons" or
// "variant_count" when out of range (mean != 0, variance > 0, mde > 0, 0 < alpha < 1,
// alpha < power < 1, daily_persons >= 0, variant_count >= 2).
StatusOr<PowerEstimate> EstimatePower(double mean, double variance, double mde, double alpha, double power,
                                      double daily_persons, int variant_count, double sequential_tuning = 0);

}  // namespace ns::stats
