// The BG/NBD model of repeat buying (Fader, Hardie & Lee 2005, "Counting your customers the
// easy way"): while alive a customer buys at rate lambda ~ Gamma(r, alpha); after each
// purchase they drop out with probability p ~ Beta(a, b). A customer's data is x (repeat
// purchases), t_x (time of the last one since the first purchase) and T (time from the first
// purchase to the end of calibration), all in one time unit. Fitted by maximum likelihood
// over customers grouped by (x, t_x, T), so the cost is the number of distinct triples.
#pragma once

#include <cstdint>
#include <vector>

namespace ns::stats {

// The fit searches within e^+-kLogBox of its start (1 for r, a, b; the mean T for alpha).
constexpr double kLogBox = 12;

struct BgNbdParams {
  double r = 0, alpha = 0, a = 0, b = 0;
};

// Customers sharing one (x, t_x, T), `weight` of them.
struct RfGroup {
  double x = 0, t_x = 0, T = 0;
  double weight = 1;
};

// Groups customers' (x, t_x, T) by equal triples (exact doubles).
std::vector<RfGroup> GroupCustomers(const std::vector<double>& x, const std::vector<double>& t_x,
                                    const std::vector<double>& T);

// The log-likelihood of one customer (eq. 6 of the paper, in logs: no hypergeometric term).
double BgNbdLogLikelihood(const BgNbdParams& p, double x, double t_x, double T);
// Sum over groups, each times its weight.
double BgNbdLogLikelihood(const BgNbdParams& p, const std::vector<RfGroup>& groups);

struct BgNbdFit {
  BgNbdParams params;
  double log_likelihood = 0;
  bool converged = false;
  int evaluations = 0;
};
// Maximum likelihood by Nelder–Mead on the parameters' logarithms.
BgNbdFit FitBgNbd(const std::vector<RfGroup>& groups);

// P(alive at T | x, t_x, T) (eq. 11).
double BgNbdProbabilityAlive(const BgNbdParams& p, double x, double t_x, double T);
// E[purchases in (T, T + t] | x, t_x, T] (eq. 10), with the hypergeometric function taken
// after Euler's transformation so its series converges fast for any x; where that series is
// ill-conditioned (a far from 1 and t long against alpha + T), by its integral over the Beta.
double BgNbdConditionalExpectedPurchases(const BgNbdParams& p, double t, double x, double t_x, double T);
// The same by the integral alone (the fallback; tests compare the two).
double BgNbdConditionalExpectedPurchasesByIntegral(const BgNbdParams& p, double t, double x, double t_x, double T);

// Discounted value of the purchases expected in (T, T + step_ends.back()]: the purchases
// expected in each step (step_ends ascending) times `value` times that step's discount factor.
double BgNbdDiscountedValue(const BgNbdParams& p, double value, double x, double t_x, double T,
                            const std::vector<double>& step_ends, const std::vector<double>& discounts);

// Gauss's hypergeometric 2F1(a, b; c; z) for 0 <= z < 1 by its power series; NaN if it has
// not converged within a million terms or its terms cancel (some over 1e6 times the sum).
double Hyp2F1(double a, double b, double c, double z);

}  // namespace ns::stats
