#include "stats/nelder_mead.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace ns::stats {

namespace {

double Safe(double v) { return std::isnan(v) ? std::numeric_limits<double>::infinity() : v; }

}  // namespace

NelderMeadResult NelderMead(const std::function<double(const std::vector<double>&)>& f, std::vector<double> x0,
                            const NelderMeadOptions& o) {
  const size_t n = x0.size();
  NelderMeadResult best;
  best.x = x0;
  best.value = Safe(f(x0));
  best.evaluations = 1;
  if (n == 0) {
    best.converged = true;
    return best;
  }
  auto eval = [&](const std::vector<double>& x) {
    best.evaluations++;
    return Safe(f(x));
  };
  for (int round = 0; round <= o.restarts && best.evaluations < o.max_evaluations; round++) {
    std::vector<std::vector<double>> pts(n + 1, best.x);
    std::vector<double> val(n + 1, best.value);
    for (size_t i = 0; i < n; i++) {
      pts[i + 1][i] += o.initial_step;
      val[i + 1] = eval(pts[i + 1]);
    }
    std::vector<size_t> order(n + 1);
    bool converged = false;
    while (best.evaluations < o.max_evaluations) {
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return val[a] < val[b]; });
      const size_t lo = order[0], hi = order[n], second = order[n - 1];
      double spread_x = 0;
      for (size_t i = 0; i <= n; i++)
        for (size_t k = 0; k < n; k++) spread_x = std::max(spread_x, std::fabs(pts[i][k] - pts[lo][k]));
      const double spread_f = std::fabs(val[hi] - val[lo]);
      if (std::isfinite(val[hi]) && spread_f <= o.f_tolerance * (1 + std::fabs(val[lo])) && spread_x <= o.x_tolerance) {
        converged = true;
        break;
      }
      std::vector<double> c(n, 0);
      for (size_t i = 0; i <= n; i++)
        if (i != hi)
          for (size_t k = 0; k < n; k++) c[k] += pts[i][k] / static_cast<double>(n);
      auto along = [&](double t) {
        std::vector<double> x(n);
        for (size_t k = 0; k < n; k++) x[k] = c[k] + t * (pts[hi][k] - c[k]);
        return x;
      };
      std::vector<double> xr = along(-1);
      double fr = eval(xr);
      if (fr < val[lo]) {
        std::vector<double> xe = along(-2);
        double fe = eval(xe);
        if (fe < fr) {
          pts[hi] = xe, val[hi] = fe;
        } else {
          pts[hi] = xr, val[hi] = fr;
        }
      } else if (fr < val[second]) {
        pts[hi] = xr, val[hi] = fr;
      } else {
        const bool outside = fr < val[hi];
        std::vector<double> xc = along(outside ? -0.5 : 0.5);
        double fc = eval(xc);
        if (fc < (outside ? fr : val[hi])) {
          pts[hi] = xc, val[hi] = fc;
        } else {  // shrink towards the best point
          for (size_t i = 0; i <= n; i++) {
            if (i == lo) continue;
            for (size_t k = 0; k < n; k++) pts[i][k] = pts[lo][k] + 0.5 * (pts[i][k] - pts[lo][k]);
            val[i] = eval(pts[i]);
          }
        }
      }
    }
    size_t lo = 0;
    for (size_t i = 1; i <= n; i++)
      if (val[i] < val[lo]) lo = i;
    const bool improved = val[lo] < best.value - o.f_tolerance * (1 + std::fabs(best.value));
    if (val[lo] <= best.value) {
      best.x = pts[lo];
      best.value = val[lo];
    }
    best.converged = converged;
    if (converged && !improved && round > 0) break;  // a restart found nothing better
  }
  return best;
}

}  // namespace ns::stats
