#include "stats/gamma_gamma.h"

#include <cmath>
#include <limits>
#include <map>
#include <utility>

#include "stats/nelder_mead.h"

namespace ns::stats {

double GammaGammaLogLikelihood(const GammaGammaParams& g, double x, double m) {
  const double px = g.p * x;
  return std::lgamma(px + g.q) - std::lgamma(px) - std::lgamma(g.q) + g.q * std::log(g.v) + (px - 1) * std::log(m) +
         px * std::log(x) - (px + g.q) * std::log(x * m + g.v);
}

GammaGammaFit FitGammaGamma(const std::vector<double>& x, const std::vector<double>& m) {
  std::map<std::pair<double, double>, double> groups;  // equal (x, m) evaluated once
  double msum = 0, n = 0;
  for (size_t i = 0; i < x.size(); i++) {
    if (!(x[i] > 0) || !(m[i] > 0)) continue;
    groups[{x[i], m[i]}] += 1;
    msum += m[i], n += 1;
  }
  const double mean = n > 0 ? msum / n : 1;
  const std::vector<double> start = {0, 0, std::log(mean)};
  auto nll = [&](const std::vector<double>& v) {
    for (size_t i = 0; i < 3; i++)  // the same box as the BG/NBD fit's (bg_nbd.h)
      if (std::fabs(v[i] - start[i]) > 12) return std::numeric_limits<double>::infinity();
    GammaGammaParams g{std::exp(v[0]), std::exp(v[1]), std::exp(v[2])};
    double s = 0;
    for (const auto& [k, w] : groups) s += w * GammaGammaLogLikelihood(g, k.first, k.second);
    return std::isfinite(s) ? -s : std::numeric_limits<double>::infinity();
  };
  NelderMeadResult r = NelderMead(nll, start);
  GammaGammaFit fit;
  fit.params = {std::exp(r.x[0]), std::exp(r.x[1]), std::exp(r.x[2])};
  fit.log_likelihood = -r.value;
  fit.converged = r.converged;
  return fit;
}

double GammaGammaExpectedAverageValue(const GammaGammaParams& g, double x, double m) {
  if (g.q <= 1) return std::numeric_limits<double>::infinity();
  if (x <= 0) return g.p * g.v / (g.q - 1);
  return g.p * (g.v + x * m) / (g.p * x + g.q - 1);
}

}  // namespace ns::stats
