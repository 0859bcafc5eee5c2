// The Gamma-Gamma model of spend per purchase (Fader, Hardie & Lee 2005, "RFM and CLV"): a
// customer's purchase values are Gamma(p, nu) with nu ~ Gamma(q, v) across customers; fitted on
// repeat buyers' number of repeat purchases x and their mean value m (the first purchase left
// out, as the reference implementations do).
#pragma once

#include <vector>

namespace ns::stats {

struct GammaGammaParams {
  double p = 0, q = 0, v = 0;
};

// log f(m | p, q, v, x) for one customer (x > 0, m > 0).
double GammaGammaLogLikelihood(const GammaGammaParams& g, double x, double m);

struct GammaGammaFit {
  GammaGammaParams params;
  double log_likelihood = 0;
  bool converged = false;
};
// Maximum likelihood over customers (x[i], m[i]); those with x <= 0 or m <= 0 are skipped.
GammaGammaFit FitGammaGamma(const std::vector<double>& x, const std::vector<double>& m);

// E[M | x, m]: a weighted mean of the population mean p v / (q - 1) and the customer's own
// mean m; the population mean when x = 0. (Needs q > 1: infinite otherwise.)
double GammaGammaExpectedAverageValue(const GammaGammaParams& g, double x, double m);

}  // namespace ns::stats
