// Robust location and scale: the median and a MAD-based sigma, which one spike cannot move.
// Used by the forecaster's clipping and dispersion and by the anomaly score.
#pragma once

#include <vector>

namespace ns::stats {

// Median (mean of the two middle values for an even count); NaN for an empty vector.
// O(n) by selection; takes a copy because selection reorders it.
double Median(std::vector<double> v);

// Robust sigma of `v` around `center`: 1.4826 * MAD (consistent for a normal), falling back
// to 1.2533 * mean absolute deviation when more than half of the values equal the centre
// (MAD = 0), so a mostly flat series with a few moves still has a scale. 0 when empty.
double RobustSigma(const std::vector<double>& v, double center);

}  // namespace ns::stats
