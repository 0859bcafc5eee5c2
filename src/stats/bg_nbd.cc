#include "stats/bg_nbd.h"

#include <cmath>
#include <limits>
#include <map>
#include <tuple>

#include "stats/nelder_mead.h"

namespace ns::stats {

namespace {

// log(1 + e^s) without overflow.
double Softplus(double s) { return s > 0 ? s + std::log1p(std::exp(-s)) : std::log1p(std::exp(s)); }

// E[h(p)] for p ~ Beta(A, B) by Simpson's rule in s = logit(p), where the density is
// log-concave: the grid spans where it is within e^-40 of its peak, wherever that lies.
template <typename H>
double BetaExpectation(H h, double A, double B) {
  auto logf = [&](double s) { return A * s - (A + B) * Softplus(s); };
  const double mode = std::log(A / B), top = logf(mode);
  auto edge = [&](double dir) {
    double step = 1e-3;
    while (logf(mode + dir * step) > top - 40 && step < 1e6) step *= 2;
    return mode + dir * step;
  };
  const double lo = edge(-1), hi = edge(1);
  const int n = 4000;
  const double w = (hi - lo) / n;
  double num = 0, den = 0;
  for (int i = 0; i <= n; i++) {
    const double s = lo + i * w, k = (i == 0 || i == n) ? 1 : (i % 2 ? 4 : 2);
    const double f = k * std::exp(logf(s) - top);
    num += f * h(1 / (1 + std::exp(-s)));
    den += f;
  }
  return num / den;
}

}  // namespace

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
  // Start at r = alpha = a = b = 1 with alpha scaled to the data's time unit (mean T).
  double wsum = 0, tsum = 0;
  for (const RfGroup& g : groups) wsum += g.weight, tsum += g.weight * g.T;
  const double scale = wsum > 0 && tsum > 0 ? tsum / wsum : 1;
  const std::vector<double> start = {0, std::log(scale), 0, 0};
  auto nll = [&](const std::vector<double>& v) {
    // A box of e^+-kLogBox around the start: small or odd data can drive the maximum off to
    // infinity (no dropout, a Poisson rate), where lgamma loses every digit; the answer is
    // then the box's edge, which predicts the same.
    for (size_t i = 0; i < 4; i++)
      if (std::fabs(v[i] - start[i]) > kLogBox) return std::numeric_limits<double>::infinity();
    BgNbdParams p{std::exp(v[0]), std::exp(v[1]), std::exp(v[2]), std::exp(v[3])};
    double ll = BgNbdLogLikelihood(p, groups);
    return std::isfinite(ll) ? -ll : std::numeric_limits<double>::infinity();
  };
  NelderMeadResult r = NelderMead(nll, start);
  BgNbdFit fit;
  fit.params = {std::exp(r.x[0]), std::exp(r.x[1]), std::exp(r.x[2]), std::exp(r.x[3])};
  fit.log_likelihood = -r.value;
  fit.converged = r.converged;
  fit.evaluations = r.evaluations;
  return fit;
}

double BgNbdProbabilityAlive(const BgNbdParams& p, double x, double t_x, double T) {
  if (x <= 0) return 1;
  const double log_ratio =
      std::log(p.a) - std::log(p.b + x - 1) + (p.r + x) * (std::log(p.alpha + T) - std::log(p.alpha + t_x));
  return 1 / (1 + std::exp(log_ratio));
}

double Hyp2F1(double a, double b, double c, double z) {
  double term = 1, sum = 1, largest = 1;
  for (int n = 0; n < 1'000'000; n++) {
    term *= (a + n) * (b + n) / ((c + n) * (n + 1)) * z;
    sum += term;
    largest = std::max(largest, std::fabs(term));
    // Terms of alternating sign far larger than the sum cancel away its digits: NaN then.
    if (std::fabs(term) <= 1e-16 * std::fabs(sum))
      return largest <= 1e6 * std::fabs(sum) ? sum : std::numeric_limits<double>::quiet_NaN();
  }
  return std::numeric_limits<double>::quiet_NaN();  // not converged: the caller integrates
}

double BgNbdConditionalExpectedPurchases(const BgNbdParams& p, double t, double x, double t_x, double T) {
  if (t <= 0) return 0;
  const double alive = BgNbdProbabilityAlive(p, x, t_x, T);
  const double z = t / (p.alpha + T + t);
  // The closed form (eq. 10) when its series is well conditioned: (1-z)^(1-a) bounds the
  // series' largest terms, and a near 1 makes its leading factor 0/0.
  if (std::fabs(p.a - 1) > 1e-6 && std::fabs(p.a - 1) * -std::log1p(-z) < 30) {
    // Euler: (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z) = (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z).
    const double series = Hyp2F1(p.a + p.b - 1 - p.r, p.a - 1, p.a + p.b + x - 1, z);
    if (std::isfinite(series)) {
      const double tail = std::pow(1 - z, p.a - 1) * series;
      return (p.a + p.b + x - 1) / (p.a - 1) * (1 - tail) * alive;
    }
  }
  return BgNbdConditionalExpectedPurchasesByIntegral(p, t, x, t_x, T);
}

double BgNbdConditionalExpectedPurchasesByIntegral(const BgNbdParams& p, double t, double x, double t_x, double T) {
  if (t <= 0) return 0;
  // Given alive, lambda ~ Gamma(r + x, alpha + T) and p ~ Beta(a, b + x);
  // E[purchases in t | lambda, p] = (1 - exp(-lambda p t)) / p, and its mean over lambda is
  // the Gamma's Laplace transform.
  const double k = p.r + x, u = t / (p.alpha + T);
  return BgNbdProbabilityAlive(p, x, t_x, T) *
         BetaExpectation([&](double q) { return q > 0 ? -std::expm1(-k * std::log1p(q * u)) / q : k * u; }, p.a,
                         p.b + x);
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
