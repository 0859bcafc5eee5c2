// Distribution functions shared by forecasts, experiments and CLV: the standard normal and
// Student's t (CDF and quantile) and the regularised incomplete beta under the t.
//
// All functions are pure and thread-safe. Accuracy, checked against R and 60-digit mpmath in
// tests/unit/stats_test.cc:
// - NormalCdf, NormalQuantile: about 1e-15 relative, in both tails.
// - StudentTCdf: absolute error below 1e-14 + 4e-15 df (the lgamma differences lose digits
//   as df grows: 2e-13 at df 1000), plus 1e-16 df / |t| near t = 0, where
//   1 - df / (df + t^2) cancels. Harmless for intervals and p-values; kept as it is because
//   the forecasts' answers are byte-identical to the code this came from (ops/forecast.cc).
// - StudentTQuantile: 1e-12 relative on top of the CDF's error.
#pragma once

namespace ns::stats {

// Phi(x) = P(Z <= x), Z standard normal. Accurate in both tails (erfc, no 1 - x).
double NormalCdf(double x);
// Phi^-1(p) (Wichura's AS 241, about 1e-16 relative). -inf at 0, +inf at 1, NaN outside.
double NormalQuantile(double p);

// I_x(a, b), the regularised incomplete beta (the CDF of Beta(a, b) at x), by the
// continued fraction (Numerical Recipes' betacf). REQUIRES: a > 0, b > 0.
double RegularizedIncompleteBeta(double a, double b, double x);

// P(T <= t), T Student's t with `df` degrees of freedom. REQUIRES: df > 0.
double StudentTCdf(double t, double df);
// The t with StudentTCdf(t, df) = p, by bisection on StudentTCdf itself, so an interval
// built from it and a probability read from the CDF agree exactly (a target on the upper
// bound of an 80% interval is reached with probability 10%, not 10% +- 1e-9).
// REQUIRES: 0 < p < 1, df > 0.
double StudentTQuantile(double p, double df);

// Q(a, x) = Gamma(a, x) / Gamma(a), the regularised upper incomplete gamma, by the series
// (x < a + 1) or the continued fraction (Numerical Recipes' gser / gcf). REQUIRES: a > 0.
double RegularizedGammaQ(double a, double x);
// P(X > x), X chi-square with `df` degrees of freedom: Q(df / 2, x / 2). REQUIRES: df > 0.
double ChiSquareSurvival(double x, double df);

}  // namespace ns::stats
