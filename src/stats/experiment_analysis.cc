// A first, frequentist-only version of the experiment analysis (two-sided Welch with the delta
// method, no CUPED, no ratio metrics) so callers can be written against the interface; the
// full engine replaces it (see experiment_analysis.h).
#include "stats/experiment_analysis.h"

#include <cmath>
#include <limits>

#include "stats/distributions.h"

namespace ns::stats {

StatusOr<ExperimentAnalysis> AnalyzeExperiment(MetricKind kind, const std::vector<VariantStatistics>& variants,
                                               const AnalysisOptions& options) {
  if (variants.size() < 2) return InvalidArgument("an experiment needs at least two variants", "variants");
  ExperimentAnalysis out;
  for (size_t i = 0; i < variants.size(); i++) {
    const VariantStatistics& v = variants[i];
    if (!(v.n >= 0) || !std::isfinite(v.n))
      return InvalidArgument("n must be a finite count >= 0", "variants[" + std::to_string(i) + "].n");
    VariantSummary s;
    s.name = v.name;
    s.n = v.n;
    if (v.n > 0) {
      s.mean = v.sum / v.n;
      double ss = kind == MetricKind::kProportion ? v.sum : v.sum_squares;
      s.variance = v.n > 1 ? std::max(0.0, (ss - v.sum * v.sum / v.n) / (v.n - 1)) : 0;
    }
    out.variants.push_back(s);
  }
  const VariantSummary& c = out.variants[0];
  double z = NormalQuantile(1 - options.alpha / 2);
  for (size_t i = 1; i < out.variants.size(); i++) {
    const VariantSummary& t = out.variants[i];
    Effect e;
    e.name = t.name;
    double nan = std::numeric_limits<double>::quiet_NaN();
    e.chance_to_win = e.risk_control = e.risk_treatment = nan;
    if (c.n < 2 || t.n < 2 || (c.variance == 0 && t.variance == 0) ||
        (options.difference == DifferenceType::kRelative && c.mean == 0)) {
      e.ok = false;
      e.error = "too few data";
      e.expected = e.ci_low = e.ci_high = e.p_value = e.p_value_unadjusted = nan;
      out.effects.push_back(e);
      continue;
    }
    double vc = c.variance / c.n, vt = t.variance / t.n, se;
    if (options.difference == DifferenceType::kAbsolute) {
      e.expected = t.mean - c.mean;
      se = std::sqrt(vc + vt);
    } else {
      e.expected = t.mean / c.mean - 1;
      se = std::sqrt(vt / (c.mean * c.mean) + vc * t.mean * t.mean / std::pow(c.mean, 4));
    }
    e.ci_low = e.expected - z * se;
    e.ci_high = e.expected + z * se;
    e.p_value = e.p_value_unadjusted = 2 * (1 - NormalCdf(std::abs(e.expected / se)));
    out.effects.push_back(e);
  }
  return out;
}

StatusOr<PowerEstimate> EstimatePower(double mean, double variance, double mde, double alpha, double power,
                                      double daily_persons, int variant_count) {
  if (!(mde > 0)) return InvalidArgument("mde must be > 0", "mde");
  double z = NormalQuantile(1 - alpha / 2) + NormalQuantile(power);
  double delta = mde * mean;
  PowerEstimate p;
  p.persons_per_variant = std::ceil(2 * variance * z * z / (delta * delta));
  p.days = daily_persons > 0 ? std::ceil(p.persons_per_variant * variant_count / daily_persons) : 0;
  return p;
}

}  // namespace ns::stats
