#include "stats/significance.h"

#include <cmath>
#include <limits>

#include "stats/distributions.h"

namespace ns::stats {
namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}  // namespace

TestResult WelchTTest(const SampleSummary& a, const SampleSummary& b) {
  TestResult r;
  double va = a.variance / a.n, vb = b.variance / b.n;
  if (!(a.n >= 2 && b.n >= 2) || !(va + vb > 0)) return {kNaN, kNaN, kNaN};
  r.statistic = (a.mean - b.mean) / std::sqrt(va + vb);
  r.df = (va + vb) * (va + vb) / (va * va / (a.n - 1) + vb * vb / (b.n - 1));
  r.p_value = 2 * StudentTCdf(-std::fabs(r.statistic), r.df);
  return r;
}

TestResult TwoProportionZTest(int64_t successes_a, int64_t n_a, int64_t successes_b, int64_t n_b) {
  TestResult r;
  r.df = std::numeric_limits<double>::infinity();
  if (n_a <= 0 || n_b <= 0) return {kNaN, r.df, kNaN};
  double pa = static_cast<double>(successes_a) / n_a;
  double pb = static_cast<double>(successes_b) / n_b;
  double pooled = static_cast<double>(successes_a + successes_b) / (n_a + n_b);
  double se = std::sqrt(pooled * (1 - pooled) * (1.0 / n_a + 1.0 / n_b));
  if (!(se > 0)) return {kNaN, r.df, kNaN};
  r.statistic = (pa - pb) / se;
  r.p_value = 2 * NormalCdf(-std::fabs(r.statistic));
  return r;
}

}  // namespace ns::stats
