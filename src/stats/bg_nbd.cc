#include "stats/bg_nbd.h"

#include <cmath>
#include <limits>
#include <map>
#include <tuple>

#include "stats/nelder_mead.h"

namespace ns::stats {

std::vector<RfGroup> GroupCustomers(const std::vector<double>& x, const std::vector<double>& t_x,
                                    const std::vector<double>& T) {
  std::map<std::tuple<double, double, double>, double> counts;
  for (size_t i = 0; i < x.size(); i++) counts[{x[i], t_x[i], T[i]}] += 1;
  std::vector<RfGroup> out;
  out.reserve(counts.size());
  for (const auto& [k, w] : counts) out.push_back(RfGroup{std::get<0>(k), std::get<1>(k), std::get<2>(k), w});
  return out;
}

double BgNbdLogLikelihood(const BgNbdParams& p, double x, double t_x, double T) {
  const double a1 = std::lgamma(p.r + x) - std::lgamma(p.r) + p.r * std::log(p.alpha);
  const double a2 = std::lgamma(p.a + p.b) + std::lgamma(p.b + x) - std::lgamma(p.b) - std::lgamma(p.a + p.b + x);
  const double a3 = -(p.r + x) * std::log(p.alpha + T);
  if (x <= 0) return a1 + a2 + a3;
  const double a4 = std::log(p.a) - std::log(p.b + x - 1) - (p.r + x) * std::log(p.alpha + t_x);
  const double m = std::max(a3, a4);  // log(exp(a3) + exp(a4)) without underflow
  return a1 + a2 + m + std::log(std::exp(a3 - m) + std::exp(a4 - m));
}

double BgNbdLogLikelihood(const BgNbdParams& p, const std::vector<RfGroup>& groups) {
  double s = 0;
  for (const RfGroup& g : groups) s += g.weight * BgNbdLogLikelihood(p, g.x, g.t_x, g.T);
  return s;
}

BgNbdFit FitBgNbd(const std::vector<RfGroup>& groups) {
  auto nll = [&](const std::vector<double>& v) {
    BgNbdParams p{std::exp(v[0]), std::exp(v[1]), std::exp(v[2]), std::exp(v[3])};
    double ll = BgNbdLogLikelihood(p, groups);
    return std::isfinite(ll) ? -ll : std::numeric_limits<double>::infinity();
  };
  // Start at r = alpha = a = b = 1 with alpha scaled to the data's time unit (mean T).
  double wsum = 0, tsum = 0;
  for (const RfGroup& g : groups) wsum += g.weight, tsum += g.weight * g.T;
  const double scale = wsum > 0 && tsum > 0 ? tsum / wsum : 1;
  NelderMeadResult r = NelderMead(nll, {0, std::log(scale), 0, 0});
  BgNbdFit fit;
  fit.params = {std::exp(r.x[0]), std::exp(r.x[1]), std::exp(r.x[2]), std::exp(r.x[3])};
  fit.log_likelihood = -r.value;
  fit.converged = r.converged;
  fit.evaluations = r.evaluations;
  return fit;
}

double BgNbdProbabilityAlive(const BgNbdParams& p, double x, double t_x, double T) {
  if (x <= 0) return 1;
  const double log_ratio = std::log(p.a) - std::log(p.b + x - 1) + (p.r + x) * (std::log(p.alpha + T) - std::log(p.alpha + t_x));
  return 1 / (1 + std::exp(log_ratio));
}

double Hyp2F1(double a, double b, double c, double z) {
  double term = 1, sum = 1;
  for (int n = 0; n < 10'000'000; n++) {
    term *= (a + n) * (b + n) / ((c + n) * (n + 1)) * z;
    sum += term;
    if (std::fabs(term) <= 1e-16 * std::fabs(sum)) break;
  }
  return sum;
}

double BgNbdConditionalExpectedPurchases(const BgNbdParams& p, double t, double x, double t_x, double T) {
  if (t <= 0) return 0;
  // a = 1 makes the leading factor 0/0; its limit is continuous, so step off it.
  const double a = std::fabs(p.a - 1) < 1e-9 ? 1 + 1e-9 : p.a;
  const double z = t / (p.alpha + T + t);
  // Euler: (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z) = (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z).
  const double tail = std::pow(1 - z, a - 1) * Hyp2F1(a + p.b - 1 - p.r, a - 1, a + p.b + x - 1, z);
  const double head = (a + p.b + x - 1) / (a - 1) * (1 - tail);
  return head * BgNbdProbabilityAlive(BgNbdParams{p.r, p.alpha, a, p.b}, x, t_x, T);
}

double BgNbdDiscountedValue(const BgNbdParams& p, double value, double x, double t_x, double T,
                            const std::vector<double>& step_ends, const std::vector<double>& discounts) {
  double sum = 0, before = 0;
  for (size_t i = 0; i < step_ends.size(); i++) {
    const double upto = BgNbdConditionalExpectedPurchases(p, step_ends[i], x, t_x, T);
    sum += (upto - before) * value * discounts[i];
    before = upto;
  }
  return sum;
}

}  // namespace ns::stats
