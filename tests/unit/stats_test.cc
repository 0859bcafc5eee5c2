// Tests of src/stats/: distribution functions against published reference values, quantiles
// against their CDFs over many random points and seeds, robust scale, significance tests.
//
// Reference values are R's (pnorm, qnorm, pt, qt, t.test, prop.test), each confirmed with
// mpmath at 60 digits (ncdf, betainc, findroot); they are printed here to 17 digits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <limits>
#include <vector>

#include "stats/distributions.h"
#include "stats/robust.h"
#include "stats/significance.h"

namespace ns::stats {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Deterministic uniforms (SplitMix64), independent of the standard library. The seed goes
// through the output mix first: with a state of seed * increment, seed k + 1 would replay
// seed k's sequence shifted by one draw.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(Mix(seed)) {}
  double Uniform() { return ((Mix(s_ += 0x9E3779B97F4A7C15ULL) >> 11) + 0.5) / 9007199254740992.0; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }

 private:
  static uint64_t Mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  uint64_t s_;
};

// |actual - expected| <= rel * |expected| (or rel when expected is 0).
::testing::AssertionResult NearRel(double actual, double expected, double rel) {
  double tol = rel * (expected == 0 ? 1 : std::fabs(expected));
  if (std::fabs(actual - expected) <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << std::setprecision(17) << actual << " vs expected " << expected
                                       << " (relative tolerance " << rel << ")";
}

double NormalPdf(double x) { return std::exp(-x * x / 2) / std::sqrt(2 * M_PI); }

double StudentTPdf(double t, double df) {
  return std::exp(std::lgamma((df + 1) / 2) - std::lgamma(df / 2) - (df + 1) / 2 * std::log1p(t * t / df)) /
         std::sqrt(df * M_PI);
}

// StudentTCdf's absolute error bound (stats/distributions.h): the continued fraction and
// lgamma differences, plus the digits 1 - df / (df + t^2) loses near t = 0.
double StudentTCdfError(double t, double df) {
  return 1e-14 + 4e-15 * df + 1e-16 * df / std::max(std::fabs(t), 1e-300);
}

struct Ref {
  double x, expected;
  double rel = 1e-14;
};

TEST(NormalTest, CdfMatchesR) {
  const Ref kRefs[] = {
      {0, 0.5},
      {1.96, 0.97500210485177957},
      {0.5, 0.6914624612740131},
      {-3, 0.0013498980316300945},
      {-10, 7.6198530241605261e-24},
      // The lower tail keeps its relative precision down to the last normal doubles.
      {-37.5, 4.6053530095819548e-308, 1e-12},
      {5, 0.99999971334842812},
  };
  for (const Ref& r : kRefs) EXPECT_TRUE(NearRel(NormalCdf(r.x), r.expected, r.rel)) << r.x;
  EXPECT_EQ(NormalCdf(-kInf), 0);
  EXPECT_EQ(NormalCdf(kInf), 1);
}

TEST(NormalTest, QuantileMatchesR) {
  const Ref kRefs[] = {
      {0.5, 0},
      {0.975, 1.9599639845400542},
      {0.025, -1.9599639845400542},
      {0.995, 2.5758293035489008},
      {0.9, 1.2815515655446005},
      {1e-10, -6.3613409024040562},
      {1e-20, -9.2623400897984076},  // the r > 5 branch of AS 241
      {1e-100, -21.273453560965324},
      {1e-300, -37.047096299361199},
  };
  for (const Ref& r : kRefs) EXPECT_TRUE(NearRel(NormalQuantile(r.x), r.expected, 1e-15)) << r.x;
  EXPECT_EQ(NormalQuantile(0), -kInf);
  EXPECT_EQ(NormalQuantile(1), kInf);
  EXPECT_TRUE(std::isnan(NormalQuantile(-0.1)));
  EXPECT_TRUE(std::isnan(NormalQuantile(1.1)));
  EXPECT_TRUE(std::isnan(NormalQuantile(std::nan(""))));
}

TEST(StudentTTest, CdfMatchesR) {
  struct TRef {
    double t, df, expected;
  };
  const TRef kRefs[] = {
      {2, 5, 0.94903026058507082},
      {-2, 5, 0.050969739414929178},
      {1, 1, 0.75},  // Cauchy: 1/2 + atan(1)/pi
      {0.5, 30, 0.68963849755743636},
      {3, 2.5, 0.96371195222548408},  // fractional degrees of freedom
      {-4, 100, 6.0761822150380839e-5},
      {10, 3, 0.99893580047079292},
      {1.5, 1000, 0.93303498058895691},
      {0, 7, 0.5},
  };
  for (const TRef& r : kRefs) {
    EXPECT_NEAR(StudentTCdf(r.t, r.df), r.expected, StudentTCdfError(r.t, r.df)) << r.t << " df " << r.df;
    if (r.df <= 30) {
      EXPECT_TRUE(NearRel(StudentTCdf(r.t, r.df), r.expected, 1e-14)) << r.t;
    }
  }
  EXPECT_EQ(StudentTCdf(-kInf, 4), 0);
  EXPECT_EQ(StudentTCdf(kInf, 4), 1);
}

TEST(StudentTTest, QuantileMatchesR) {
  struct QRef {
    double p, df, expected;
  };
  const QRef kRefs[] = {
      {0.975, 10, 2.2281388519862747}, {0.975, 1, 12.706204736174705},    {0.975, 2, 4.3026527297494639},
      {0.025, 2, -4.3026527297494639}, {0.95, 30, 1.6972608865939578},    {0.9, 5, 1.4758840488244811},
      {0.995, 3, 5.8409093097333573},  {0.999, 1000, 3.0984021639129229}, {0.8, 2.5, 1.0101638747222387},
  };
  for (const QRef& r : kRefs)
    EXPECT_TRUE(NearRel(StudentTQuantile(r.p, r.df), r.expected, 1e-11)) << r.p << " df " << r.df;
  EXPECT_EQ(StudentTQuantile(0.5, 3), 0);
}

TEST(StudentTTest, ClosedFormsForOneAndTwoDegreesOfFreedom) {
  // Lower tails written without cancellation: atan(1/|t|) / pi (Cauchy) and
  // 1 / (s (s + |t|)), s = sqrt(2 + t^2).
  Rng rng(7);
  for (int i = 0; i < 1000; ++i) {
    double t = rng.Uniform(-50, 0);
    double s = std::sqrt(2 + t * t);
    EXPECT_TRUE(NearRel(StudentTCdf(t, 1), std::atan(-1 / t) / M_PI, 1e-14)) << t;
    EXPECT_TRUE(NearRel(StudentTCdf(t, 2), 1 / (s * (s - t)), 1e-14)) << t;
  }
}

TEST(StudentTTest, ApproachesNormalForLargeDegreesOfFreedom) {
  for (double x = -5; x <= 5; x += 0.25) EXPECT_NEAR(StudentTCdf(x, 1e8), NormalCdf(x), 1e-8) << x;
}

TEST(RegularizedIncompleteBetaTest, MatchesR) {
  EXPECT_TRUE(NearRel(RegularizedIncompleteBeta(2, 3, 0.4), 0.5248, 1e-14));  // pbeta(.4, 2, 3)
  EXPECT_TRUE(NearRel(RegularizedIncompleteBeta(0.5, 7.5, 0.9), 0.99999999328971035, 1e-14));
  EXPECT_EQ(RegularizedIncompleteBeta(2, 3, 0), 0);
  EXPECT_EQ(RegularizedIncompleteBeta(2, 3, 1), 1);
}

// Round trips over random points. The tolerance on x is the quantile's own precision plus
// what one rounding of p costs, eps(p) / pdf(x): near p = 1 the CDF cannot tell apart x's
// closer than that, so no quantile could do better.
class RoundTrip : public ::testing::TestWithParam<int> {};

TEST_P(RoundTrip, NormalQuantileInvertsCdf) {
  Rng rng(GetParam());
  for (int i = 0; i < 5000; ++i) {
    double x = i % 2 ? rng.Uniform(-37, 0) : rng.Uniform(0, 8);
    double p = NormalCdf(x);
    double tol = 1e-14 * std::max(1.0, std::fabs(x)) + 2.3e-16 * p / NormalPdf(x);
    ASSERT_NEAR(NormalQuantile(p), x, tol) << "x " << x;
  }
  // p side, log-uniform down to 1e-300. A relative error e in x moves Phi by x^2 e relative.
  for (int i = 0; i < 5000; ++i) {
    double p = i % 2 ? rng.Uniform() : std::pow(10.0, rng.Uniform(-300, 0));
    double x = NormalQuantile(p);
    ASSERT_TRUE(NearRel(NormalCdf(x), p, 2e-15 * std::max(1.0, x * x))) << "p " << p;
  }
}

TEST_P(RoundTrip, StudentTQuantileInvertsCdf) {
  Rng rng(GetParam() + 1000);
  for (int i = 0; i < 2000; ++i) {
    double df = std::pow(10.0, rng.Uniform(0, 3));  // 1 to 1000, fractional too
    double t = rng.Uniform(-8, 8);
    double p = StudentTCdf(t, df);
    // The bisection's 1e-12 relative width, and the CDF's own error turned into x.
    double tol = 1e-12 * std::fabs(t) + (2.3e-16 + StudentTCdfError(t, df)) / StudentTPdf(t, df);
    ASSERT_NEAR(StudentTQuantile(p, df), t, tol) << "t " << t << " df " << df;
  }
  for (int i = 0; i < 2000; ++i) {
    double df = std::pow(10.0, rng.Uniform(0, 3));
    double p = rng.Uniform(0.001, 0.999);
    double t = StudentTQuantile(p, df);
    double tol = 1e-12 * std::fabs(t) * StudentTPdf(t, df) + StudentTCdfError(t, df);
    ASSERT_NEAR(StudentTCdf(t, df), p, tol) << "p " << p << " df " << df;
  }
}

TEST_P(RoundTrip, StudentTCdfIsSymmetric) {
  Rng rng(GetParam() + 2000);
  for (int i = 0; i < 2000; ++i) {
    double df = std::pow(10.0, rng.Uniform(0, 3));
    double t = rng.Uniform(-20, 20);
    ASSERT_NEAR(StudentTCdf(t, df) + StudentTCdf(-t, df), 1.0, 1e-15) << t << " df " << df;
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, RoundTrip, ::testing::Range(1, 6));

TEST(RobustTest, Median) {
  EXPECT_TRUE(std::isnan(Median({})));
  EXPECT_EQ(Median({3}), 3);
  EXPECT_EQ(Median({5, 1, 3}), 3);
  EXPECT_EQ(Median({4, 1, 3, 2}), 2.5);
  EXPECT_EQ(Median({-1, 100, 2, 2}), 2);
}

TEST(RobustTest, RobustSigma) {
  EXPECT_EQ(RobustSigma({}, 0), 0);
  // Deviations from 10: 0 1 1 2 1000 -> MAD 1; the outlier does not count.
  EXPECT_DOUBLE_EQ(RobustSigma({10, 11, 9, 12, 1010}, 10), 1.4826);
  // More than half at the centre: MAD = 0, mean absolute deviation instead (4 / 5).
  EXPECT_DOUBLE_EQ(RobustSigma({7, 7, 7, 11, 7}, 7), 1.2533 * 0.8);
  EXPECT_EQ(RobustSigma({7, 7, 7}, 7), 0);
}

TEST(SignificanceTest, WelchMatchesR) {
  TestResult r = WelchTTest({12, 5.1, 2.3}, {15, 3.9, 4.7});
  EXPECT_TRUE(NearRel(r.statistic, 1.6886341073527005, 1e-14));
  EXPECT_TRUE(NearRel(r.df, 24.634515466935223, 1e-14));
  EXPECT_TRUE(NearRel(r.p_value, 0.10391028487547827, 1e-12));
  r = WelchTTest({1000, 20.5, 100}, {800, 21.3, 144});
  EXPECT_TRUE(NearRel(r.statistic, -1.5118578920369089, 1e-14));
  EXPECT_TRUE(NearRel(r.df, 1550.6114932503419, 1e-13));
  EXPECT_TRUE(NearRel(r.p_value, 0.13077378206644795, 1e-11));  // t CDF at df 1550
}

TEST(SignificanceTest, WelchDegenerate) {
  EXPECT_TRUE(std::isnan(WelchTTest({1, 5, 0}, {10, 4, 1}).p_value));
  EXPECT_TRUE(std::isnan(WelchTTest({10, 5, 0}, {10, 4, 0}).p_value));
}

TEST(SignificanceTest, TwoProportionMatchesR) {
  TestResult r = TwoProportionZTest(120, 1000, 150, 1000);
  EXPECT_TRUE(NearRel(r.statistic, -1.9630498076223552, 1e-14));
  EXPECT_TRUE(NearRel(r.p_value, 0.049640386865368789, 1e-12));
  EXPECT_EQ(r.df, kInf);
  r = TwoProportionZTest(45, 300, 30, 310);
  EXPECT_TRUE(NearRel(r.statistic, 2.0013411240577502, 1e-14));
  EXPECT_TRUE(NearRel(r.p_value, 0.045355640815756649, 1e-12));
}

TEST(SignificanceTest, TwoProportionDegenerate) {
  EXPECT_TRUE(std::isnan(TwoProportionZTest(0, 0, 5, 10).p_value));
  EXPECT_TRUE(std::isnan(TwoProportionZTest(0, 10, 0, 10).p_value));
  EXPECT_TRUE(std::isnan(TwoProportionZTest(10, 10, 10, 10).p_value));
}

}  // namespace
}  // namespace ns::stats
