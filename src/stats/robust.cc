#include "stats/robust.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace ns::stats {

double Median(std::vector<double> v) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  size_t m = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + m, v.end());
  double hi = v[m];
  if (v.size() % 2 == 1) return hi;
  double lo = *std::max_element(v.begin(), v.begin() + m);
  return (lo + hi) / 2;
}

double RobustSigma(const std::vector<double>& v, double center) {
  constexpr double kMadToSigma = 1.4826;
  constexpr double kMeanAbsToSigma = 1.2533;  // sqrt(pi / 2)
  if (v.empty()) return 0;
  std::vector<double> dev;
  dev.reserve(v.size());
  for (double x : v) dev.push_back(std::fabs(x - center));
  double mad = Median(dev);
  if (mad > 0) return kMadToSigma * mad;
  double mean_abs = std::accumulate(dev.begin(), dev.end(), 0.0) / dev.size();
  return kMeanAbsToSigma * mean_abs;
}

}  // namespace ns::stats
