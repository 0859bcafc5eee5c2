// A small Nelder–Mead simplex minimiser (docs/decisions.md "CLV: our own Nelder–Mead"): the
// CLV models have 3 or 4 parameters, fitted on their logarithms so every point is valid.
#pragma once

#include <functional>
#include <vector>

namespace ns::stats {

struct NelderMeadOptions {
  double initial_step = 0.5;   // the first simplex: each coordinate moved by this much
  double f_tolerance = 1e-12;  // stop when the simplex's values differ by less (relative)
  double x_tolerance = 1e-10;  // ...and its points by less than this
  int max_evaluations = 20000;
  int restarts = 3;  // restarts from the best point: the simplex can collapse early
};

struct NelderMeadResult {
  std::vector<double> x;
  double value = 0;
  int evaluations = 0;
  bool converged = false;
};

// Minimises f from x0. f may return +inf or NaN for points outside its domain (treated as +inf).
NelderMeadResult NelderMead(const std::function<double(const std::vector<double>&)>& f, std::vector<double> x0,
                            const NelderMeadOptions& options = {});

}  // namespace ns::stats
