// Two-sample significance tests for experiments: Welch's t-test on means and the pooled
// two-proportion z-test on conversion rates. Both two-sided; summaries in, no raw samples.
#pragma once

#include <cstdint>

namespace ns::stats {

struct SampleSummary {
  double n = 0;  // observations
  double mean = 0;
  double variance = 0;  // unbiased (n - 1 denominator)
};

struct TestResult {
  double statistic = 0;  // t or z, sign of (a - b)
  double df = 0;         // Welch-Satterthwaite degrees of freedom; infinity for z
  double p_value = 1;    // two-sided
};

// Welch's unequal-variance t-test of mean(a) == mean(b) (R: t.test(a, b)). NaN statistic
// and p-value when a group has fewer than 2 observations or both variances are 0.
TestResult WelchTTest(const SampleSummary& a, const SampleSummary& b);

// z-test of p_a == p_b with the pooled proportion in the standard error, no continuity
// correction (R: prop.test(c(xa, xb), c(na, nb), correct = FALSE); z^2 is its X-squared).
// NaN when a group is empty or the pooled proportion is 0 or 1.
TestResult TwoProportionZTest(int64_t successes_a, int64_t n_a, int64_t successes_b, int64_t n_b);

}  // namespace ns::stats
