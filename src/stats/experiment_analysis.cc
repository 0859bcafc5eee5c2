// The experiment-analysis engine. Each treatment is compared with control on its own, as
// gbstats does: the pair's statistics are built (CUPED coefficient from the pooled pair), the
// effect's point estimate and standard error follow from the delta method (EffectMoments),
// and the chosen method turns them into an interval, a p-value or a posterior. The formulas
// are written out in docs/statistics.md; the numbers are checked against
// gbstats' published cases in tests/unit/experiment_analysis_test.cc.
#include "stats/experiment_analysis.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>

#include "stats/distributions.h"

namespace ns::stats {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr char kZeroVariance[] = "ZERO_NEGATIVE_VARIANCE";
constexpr char kBaselineZero[] = "ZERO_NEGATIVE_BASELINE_VARIATION";
constexpr char kSequentialOneSidedAlpha[] = "ALPHA_GREATER_THAN_0.5_FOR_SEQUENTIAL_ONE_SIDED_TEST";
constexpr char kNotConverged[] = "NUMERICAL_PVALUE_NOT_CONVERGED";

// One column of per-person values: a sample (variance with n - 1) or a 0/1 conversion
// (variance p (1 - p), gbstats' ProportionStatistic).
struct Column {
  double n = 0, sum = 0, sum_squares = 0;
  bool proportion = false;
  double Mean() const { return n == 0 ? 0 : sum / n; }
  double Variance() const {
    if (proportion) return Mean() * (1 - Mean());
    return n <= 1 ? 0 : (sum_squares - sum * sum / n) / (n - 1);
  }
};

// The sample covariance of two columns over the same n persons.
double Covariance(double n, const Column& a, const Column& b, double sum_products) {
  if (n <= 1) return 0;
  if (a.proportion && b.proportion) return sum_products / n - a.sum * b.sum / (n * n);
  return (sum_products - a.sum * b.sum / n) / (n - 1);
}

// Var(M / D) by the delta method.
double VarianceOfRatios(double mean_m, double var_m, double mean_d, double var_d, double cov_md) {
  if (mean_d == 0) return 0;
  return var_m / (mean_d * mean_d) + var_d * mean_m * mean_m / std::pow(mean_d, 4) -
         2 * cov_md * mean_m / std::pow(mean_d, 3);
}

using Vec4 = std::array<double, 4>;
using Mat4 = std::array<Vec4, 4>;

// A variant's statistic as the analysis sees it: a plain column, a ratio of two columns, a
// CUPED-adjusted column (post - theta * pre) or a CUPED-adjusted ratio.
struct Statistic {
  enum Type { kSample, kRatio, kAdjusted, kAdjustedRatio } type = kSample;
  double n = 0;
  Column m, d, m_pre, d_pre;  // m: the value (or numerator); d: the denominator
  // Sums over persons of the products: m*d, m*m_pre, d*d_pre, m_pre*d_pre, m*d_pre, m_pre*d.
  double m_d = 0, m_mpre = 0, d_dpre = 0, mpre_dpre = 0, m_dpre = 0, mpre_d = 0;
  double theta = 0;

  double PostRatio() const { return d.sum == 0 ? 0 : m.sum / d.sum; }
  double Mean() const {
    switch (type) {
      case kSample: return m.Mean();
      case kRatio: return PostRatio();
      case kAdjusted: return m.Mean() - theta * m_pre.Mean();
      case kAdjustedRatio:
        if (d.sum == 0 || d_pre.sum == 0) return 0;
        return PostRatio() - theta * (m_pre.sum / d_pre.sum);
    }
    return 0;
  }
  double UnadjustedMean() const {
    if (type == kAdjusted) return m.Mean();
    if (type == kAdjustedRatio) return PostRatio();
    return Mean();
  }
  // The 4x4 covariance of (m, d, m_pre, d_pre) per person.
  Mat4 Lambda() const {
    double c_md = Covariance(n, m, d, m_d), c_mmp = Covariance(n, m, m_pre, m_mpre),
           c_mdp = Covariance(n, m, d_pre, m_dpre), c_dmp = Covariance(n, d, m_pre, mpre_d),
           c_ddp = Covariance(n, d, d_pre, d_dpre), c_mpdp = Covariance(n, m_pre, d_pre, mpre_dpre);
    return Mat4{Vec4{m.Variance(), c_md, c_mmp, c_mdp}, Vec4{c_md, d.Variance(), c_dmp, c_ddp},
                Vec4{c_mmp, c_dmp, m_pre.Variance(), c_mpdp}, Vec4{c_mdp, c_ddp, c_mpdp, d_pre.Variance()}};
  }
  // The gradient of m/d - theta * m_pre/d_pre at the means.
  Vec4 Nabla() const {
    Vec4 beta{m.Mean(), d.Mean(), m_pre.Mean(), d_pre.Mean()};
    if (beta[1] == 0) return Vec4{0, 0, 0, 0};
    double n2 = 0, n3 = 0;
    if (beta[3] != 0) {
      n2 = -theta / beta[3];
      n3 = theta * beta[2] / (beta[3] * beta[3]);
    }
    return Vec4{1 / beta[1], -beta[0] / (beta[1] * beta[1]), n2, n3};
  }
  double Variance() const {
    switch (type) {
      case kSample: return m.Variance();
      case kRatio:
        if (d.Mean() == 0 || n <= 1) return 0;
        return VarianceOfRatios(m.Mean(), m.Variance(), d.Mean(), d.Variance(), Covariance(n, m, d, m_d));
      case kAdjusted:
        if (n <= 1) return 0;
        return m.Variance() + theta * theta * m_pre.Variance() - 2 * theta * Covariance(n, m, m_pre, m_mpre);
      case kAdjustedRatio: {
        Mat4 l = Lambda();
        Vec4 g = Nabla();
        double v = 0;
        for (int i = 0; i < 4; i++)
          for (int j = 0; j < 4; j++) v += g[i] * l[i][j] * g[j];
        return v;
      }
    }
    return 0;
  }
  // kAdjustedRatio: the variance of the pre-window term and its covariance with the post
  // term (for the CUPED coefficient).
  double PreVariance() const {
    Mat4 l = Lambda();
    Vec4 g = Nabla();
    double v = 0;
    for (int i = 2; i < 4; i++)
      for (int j = 2; j < 4; j++) v += g[i] * l[i][j] * g[j];
    return v;
  }
  double PrePostCovariance() const {
    Mat4 l = Lambda();
    Vec4 g = Nabla();
    double v = 0;
    for (int i = 2; i < 4; i++)
      for (int j = 0; j < 2; j++) v += g[i] * l[i][j] * g[j];
    return v;
  }
  // Without the CUPED adjustment (when the pre window carries no information).
  Statistic Unadjusted() const {
    Statistic s = *this;
    if (type == kAdjustedRatio) s.type = kRatio;
    if (type == kAdjusted) s.type = kSample;
    s.theta = 0;
    return s;
  }
};

Statistic MakeStatistic(MetricKind kind, const VariantStatistics& v) {
  Statistic s;
  s.n = v.n;
  bool proportion = kind == MetricKind::kProportion;
  s.m = Column{v.n, v.sum, proportion ? v.sum : v.sum_squares, proportion};
  s.m_pre = Column{v.n, v.pre_sum, proportion ? v.pre_sum : v.pre_sum_squares, proportion};
  s.m_mpre = v.main_pre_sum_product;
  if (kind == MetricKind::kRatio) {
    s.d = Column{v.n, v.denominator_sum, v.denominator_sum_squares, false};
    s.d_pre = Column{v.n, v.pre_denominator_sum, v.pre_denominator_sum_squares, false};
    s.m_d = v.main_denominator_sum_product;
    s.d_dpre = v.denominator_pre_denominator_sum_product;
    s.mpre_dpre = v.pre_pre_denominator_sum_product;
    s.m_dpre = v.main_pre_denominator_sum_product;
    s.mpre_d = v.pre_denominator_sum_product;
    s.type = v.has_pre ? Statistic::kAdjustedRatio : Statistic::kRatio;
  } else {
    s.type = v.has_pre ? Statistic::kAdjusted : Statistic::kSample;
  }
  return s;
}

// The pair's CUPED coefficient (gbstats' compute_theta): the pooled regression slope of post
// on pre; for ratios, the slope of the post ratio on the pre ratio by the delta method. A
// coefficient of 0 drops the adjustment.
void AdjustPair(Statistic& a, Statistic& b) {
  if (a.type == Statistic::kAdjusted) {
    double n = a.n + b.n;
    auto joint_variance = [n](const Column& x, const Column& y) {
      double sum = x.sum + y.sum;
      if (x.proportion) return (sum / n) * (1 - sum / n);
      return (x.sum_squares + y.sum_squares - sum * sum / n) / (n - 1);
    };
    double pre_variance = joint_variance(a.m_pre, b.m_pre), post_variance = joint_variance(a.m, b.m);
    double theta = 0;
    if (pre_variance != 0 && post_variance != 0) {
      double covariance = (a.m_mpre + b.m_mpre - (a.m.sum + b.m.sum) * (a.m_pre.sum + b.m_pre.sum) / n) / (n - 1);
      theta = covariance / pre_variance;
    }
    if (theta == 0 || !std::isfinite(theta)) {
      a = a.Unadjusted();
      b = b.Unadjusted();
      return;
    }
    a.theta = b.theta = theta;
  } else if (a.type == Statistic::kAdjustedRatio) {
    Statistic a1 = a, b1 = b;
    a1.theta = b1.theta = 1;
    double pre_variance = a1.PreVariance() + b1.PreVariance();
    double theta = pre_variance == 0 ? 0 : -(a1.PrePostCovariance() + b1.PrePostCovariance()) / pre_variance;
    if (std::fabs(theta) < 1e-8 || !std::isfinite(theta)) {
      a = a.Unadjusted();
      b = b.Unadjusted();
      return;
    }
    a.theta = b.theta = theta;
  }
}

// Var of the relative effect of CUPED-adjusted means (gbstats' frequentist_variance_relative_cuped).
double RelativeCupedVariance(const Statistic& a, const Statistic& b) {
  double base = a.UnadjustedMean();
  double den_t = b.n * base * base, den_c = a.n * base * base;
  if (den_t == 0 || den_c == 0) return 0;
  double theta = a.theta;
  double num_t =
      b.m.Variance() + theta * theta * b.m_pre.Variance() - 2 * theta * Covariance(b.n, b.m, b.m_pre, b.m_mpre);
  double c = -b.m.Mean();
  double post_mean = a.m.Mean();
  double num_c = a.m.Variance() * c * c / (post_mean * post_mean) +
                 2 * theta * Covariance(a.n, a.m, a.m_pre, a.m_mpre) * c / post_mean +
                 theta * theta * a.m_pre.Variance();
  return num_t / den_t + num_c / den_c;
}

// The same for CUPED-adjusted ratios (gbstats' frequentist_variance_relative_cuped_ratio).
double RelativeCupedRatioVariance(const Statistic& a, const Statistic& b) {
  double base = a.UnadjustedMean(), d_mean = a.d.Mean();
  if (base == 0 || d_mean == 0) return 0;
  double g_abs = b.Mean() - a.Mean(), g_den = std::fabs(base);
  double m_mean = a.m.Mean();
  Vec4 ga = a.Nabla(), gb = b.Nabla();
  Vec4 na{(-(g_den + g_abs) / d_mean) / (g_den * g_den),
          (m_mean * g_den / (d_mean * d_mean) + m_mean * g_abs / (d_mean * d_mean)) / (g_den * g_den), -ga[2] / g_den,
          -ga[3] / g_den};
  Vec4 nb{gb[0] / g_den, gb[1] / g_den, gb[2] / g_den, gb[3] / g_den};
  auto quadratic = [](const Vec4& g, const Mat4& l) {
    double v = 0;
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++) v += g[i] * l[i][j] * g[j];
    return v;
  };
  return quadratic(na, a.Lambda()) / a.n + quadratic(nb, b.Lambda()) / b.n;
}

// The effect's point estimate and standard error (gbstats' EffectMoments) for one pair.
struct Moments {
  const char* error = nullptr;
  double estimate = 0, standard_error = 0;
};

Moments EffectMoments(const Statistic& a, const Statistic& b, bool relative) {
  Moments out;
  double variance;
  if (relative && a.type == Statistic::kAdjusted) {
    variance = RelativeCupedVariance(a, b);
  } else if (relative && a.type == Statistic::kAdjustedRatio) {
    variance = RelativeCupedRatioVariance(a, b);
  } else {
    double var_a = a.Variance(), var_b = b.Variance();
    if (relative) {
      double base = a.UnadjustedMean();
      variance = base == 0 ? 0 : var_b / b.n / (base * base) + var_a / a.n * b.Mean() * b.Mean() / std::pow(base, 4);
    } else {
      variance = var_b / b.n + var_a / a.n;
    }
  }
  auto zero = [](const Statistic& s) { return s.n <= 1 || !(s.Variance() > 0); };
  if (zero(a) || zero(b) || !(variance > 0)) {
    out.error = kZeroVariance;
    return out;
  }
  if (a.Mean() == 0 || a.UnadjustedMean() == 0) {
    out.error = kBaselineZero;
    return out;
  }
  double base = a.UnadjustedMean();
  out.estimate = relative ? (b.Mean() - a.Mean()) / base : b.Mean() - a.Mean();
  out.standard_error = std::sqrt(variance);
  return out;
}

// Welch-Satterthwaite degrees of freedom of the pair (1 when undefined, as gbstats).
double WelchDof(const Statistic& a, const Statistic& b) {
  double va = a.Variance(), vb = b.Variance();
  if (a.n <= 1 || b.n <= 1 || va == 0 || vb == 0) return 1;
  double num = std::pow(vb / b.n + va / a.n, 2);
  double den = vb * vb / (b.n * b.n * (b.n - 1)) + va * va / (a.n * a.n * (a.n - 1));
  return num / den;
}

// The mixing parameter of the normal-mixture confidence sequence (Howard et al. 2021, eq.
// 161 of arXiv 2103.06476v7), tuned to be tightest at `tuning` persons in all.
double SequentialRho(double alpha, double tuning) {
  return std::sqrt((-2 * std::log(alpha) + std::log(-2 * std::log(alpha) + 1)) / tuning);
}

// Half-widths of the always-valid intervals (eq. 9 there) with per-person variance s2 at n.
double SequentialHalfwidth(double s2, double n, double alpha, double rho) {
  double nr2 = n * rho * rho;
  return std::sqrt(s2) * std::sqrt(2 * (nr2 + 1) * std::log(std::sqrt(nr2 + 1) / alpha) / std::pow(n * rho, 2));
}
double SequentialHalfwidthOneSided(double s2, double n, double alpha, double rho) {
  double nr2 = n * rho * rho;
  return std::sqrt(s2 * (2 * (nr2 + 1) / std::pow(n * rho, 2)) * std::log(1 + std::sqrt(nr2 + 1) / (2 * alpha)));
}

// The one-sided sequential p-value: the alpha at which the interval's bound reaches 0, by
// gbstats' bisection over alpha in [1e-5, 0.4999] with rho held fixed (so its answers, the
// 0.4999 and 1e-5 ends included, are reproduced).
bool SequentialOneSidedPValue(double estimate, double s2, double n, double rho, bool lesser, double* p) {
  auto bound = [&](double alpha) {
    double hw = SequentialHalfwidthOneSided(s2, n, alpha, rho);
    return lesser ? estimate + hw : estimate - hw;
  };
  double lo = 1e-5, hi = 0.4999;
  if (lesser ? bound(lo) < 0 : bound(lo) > 0) {
    *p = lo;
    return true;
  }
  if (lesser ? bound(hi) > 0 : bound(hi) < 0) {
    *p = hi;
    return true;
  }
  double alpha = 0.5 * (lo + hi), diff = 0;
  int iters = 0;
  constexpr int kMaxIters = 100;
  for (int i = 0; i < kMaxIters; i++) {
    iters = i;
    diff = bound(alpha);
    if (lesser ? diff > 0 : diff < 0) {
      lo = alpha;
    } else {
      hi = alpha;
    }
    alpha = 0.5 * (lo + hi);
    if (std::fabs(diff) < 1e-6) break;
  }
  if (std::fabs(diff) < 1e-6 && iters != kMaxIters) {
    *p = alpha;
    return true;
  }
  return false;
}

double NormalPdf(double x) { return std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI); }

Effect FailedEffect(const std::string& name, const char* error) {
  Effect e;
  e.name = name;
  e.ok = false;
  e.error = error;
  e.expected = e.ci_low = e.ci_high = e.standard_error = e.cuped_theta = kNaN;
  e.p_value = e.p_value_unadjusted = e.ci_low_unadjusted = e.ci_high_unadjusted = kNaN;
  e.chance_to_win = e.risk_control = e.risk_treatment = kNaN;
  return e;
}

Effect AnalyzePair(Statistic a, Statistic b, const std::string& name, const AnalysisOptions& o) {
  AdjustPair(a, b);
  bool relative = o.difference == DifferenceType::kRelative;
  Moments mo = EffectMoments(a, b, relative);
  if (mo.error != nullptr) return FailedEffect(name, mo.error);
  bool sequential = o.method == AnalysisMethod::kSequential;
  if (sequential && o.alternative != Alternative::kTwoSided && o.alpha >= 0.5)
    return FailedEffect(name, kSequentialOneSidedAlpha);
  Effect e = FailedEffect(name, "");
  e.ok = true;
  e.error.clear();
  e.cuped_theta = a.theta;
  double pe = mo.estimate, se = mo.standard_error;
  double alpha = o.alpha;

  if (o.method == AnalysisMethod::kBayesian) {
    double data_variance = se * se;
    double precision = 1 / data_variance + (o.prior_proper ? 1 / o.prior_variance : 0);
    double mean = o.prior_proper ? (pe / data_variance + o.prior_mean / o.prior_variance) / precision : pe;
    double sd = std::sqrt(1 / precision);
    e.expected = mean;
    e.standard_error = sd;
    double z = NormalQuantile(1 - alpha / 2);
    e.ci_low = e.ci_low_unadjusted = mean - z * sd;
    e.ci_high = e.ci_high_unadjusted = mean + z * sd;
    double t = mean / sd;
    e.chance_to_win = NormalCdf(t);
    // E[max(X, 0)] and E[max(-X, 0)] for X ~ N(mean, sd^2).
    e.risk_control = mean * NormalCdf(t) + sd * NormalPdf(t);
    e.risk_treatment = -mean * NormalCdf(-t) + sd * NormalPdf(t);
    return e;
  }

  e.expected = pe;
  e.standard_error = se;
  if (!sequential) {
    double dof = WelchDof(a, b), t = pe / se;
    switch (o.alternative) {
      case Alternative::kTwoSided: {
        double w = StudentTQuantile(1 - alpha / 2, dof) * se;
        e.ci_low = pe - w;
        e.ci_high = pe + w;
        e.p_value = 2 * StudentTCdf(-std::fabs(t), dof);
        break;
      }
      case Alternative::kGreater:
        e.ci_low = pe - StudentTQuantile(1 - alpha, dof) * se;
        e.ci_high = kInf;
        e.p_value = StudentTCdf(-t, dof);
        break;
      case Alternative::kLess:
        e.ci_low = -kInf;
        e.ci_high = pe + StudentTQuantile(1 - alpha, dof) * se;
        e.p_value = StudentTCdf(t, dof);
        break;
    }
  } else {
    double n = a.n + b.n, s2 = se * se * n;
    if (o.alternative == Alternative::kTwoSided) {
      double rho = SequentialRho(alpha, o.sequential_tuning);
      double w = SequentialHalfwidth(s2, n, alpha, rho);
      e.ci_low = pe - w;
      e.ci_high = pe + w;
      // The mixture e-value's reciprocal (eq. 155 there).
      double st2 = pe * pe * n / (se * se), tr2p1 = n * rho * rho + 1;
      double evalue = std::exp(rho * rho * st2 / (2 * tr2p1)) / std::sqrt(tr2p1);
      e.p_value = std::min(1 / evalue, 1.0);
    } else {
      bool lesser = o.alternative == Alternative::kLess;
      double rho = SequentialRho(2 * alpha, o.sequential_tuning);
      double w = SequentialHalfwidthOneSided(s2, n, alpha, rho);
      e.ci_low = lesser ? -kInf : pe - w;
      e.ci_high = lesser ? pe + w : kInf;
      double p;
      if (SequentialOneSidedPValue(pe, s2, n, rho, lesser, &p)) {
        e.p_value = p;
      } else {
        e.error = kNotConverged;  // the interval stands; only the p-value is missing
      }
    }
  }
  e.p_value_unadjusted = e.p_value;
  e.ci_low_unadjusted = e.ci_low;
  e.ci_high_unadjusted = e.ci_high;
  return e;
}

std::string Field(size_t i, const char* name) { return "variants[" + std::to_string(i) + "]." + name; }

// A column's sums must be finite and its sum of squares at least sum^2 / n (Cauchy-Schwarz),
// up to rounding.
Status CheckColumn(size_t i, double n, double sum, double sum_squares, const char* sum_field,
                   const char* squares_field) {
  if (!std::isfinite(sum)) return InvalidArgument("must be a finite number", Field(i, sum_field));
  if (!std::isfinite(sum_squares) || sum_squares < 0)
    return InvalidArgument("must be a finite number >= 0", Field(i, squares_field));
  if (n > 0 && sum_squares < sum * sum / n * (1 - 1e-9) - 1e-9)
    return InvalidArgument(std::string("is below ") + sum_field + "^2 / n, which no values allow",
                           Field(i, squares_field));
  if (n == 0 && (sum != 0 || sum_squares != 0))
    return InvalidArgument("must be 0 when n is 0", Field(i, sum != 0 ? sum_field : squares_field));
  return Status::OK();
}

Status Validate(MetricKind kind, const std::vector<VariantStatistics>& variants, const AnalysisOptions& o) {
  if (variants.size() < 2) return InvalidArgument("an experiment needs at least two variants", "variants");
  if (!(o.alpha > 0 && o.alpha < 1)) return InvalidArgument("alpha must be in (0, 1)", "alpha");
  if (o.method == AnalysisMethod::kSequential && !(o.sequential_tuning > 0 && std::isfinite(o.sequential_tuning)))
    return InvalidArgument("sequential_tuning must be a number > 0", "sequential_tuning");
  if (o.method == AnalysisMethod::kBayesian && o.prior_proper) {
    if (!(o.prior_variance > 0 && std::isfinite(o.prior_variance)))
      return InvalidArgument("prior_variance must be a number > 0", "prior_variance");
    if (!std::isfinite(o.prior_mean)) return InvalidArgument("prior_mean must be a finite number", "prior_mean");
  }
  if (!(o.winsorize_percentile >= 0 && o.winsorize_percentile <= 1))
    return InvalidArgument("winsorize_percentile must be in [0, 1]", "winsorize_percentile");
  if (!o.traffic_weights.empty()) {
    if (o.traffic_weights.size() != variants.size())
      return InvalidArgument("traffic_weights needs one weight per variant", "traffic_weights");
    for (size_t i = 0; i < o.traffic_weights.size(); i++)
      if (!(o.traffic_weights[i] >= 0 && std::isfinite(o.traffic_weights[i])))
        return InvalidArgument("a weight must be a finite number >= 0", "traffic_weights[" + std::to_string(i) + "]");
  }
  for (size_t i = 0; i < variants.size(); i++) {
    const VariantStatistics& v = variants[i];
    if (!(v.n >= 0) || !std::isfinite(v.n)) return InvalidArgument("n must be a finite count >= 0", Field(i, "n"));
    if (v.has_pre != variants[0].has_pre)
      return InvalidArgument("has_pre must be the same on every variant (CUPED needs the pre window everywhere)",
                             Field(i, "has_pre"));
    if (kind == MetricKind::kProportion) {
      if (!(v.sum >= 0 && v.sum <= v.n)) return InvalidArgument("conversions must be in [0, n]", Field(i, "sum"));
      if (v.has_pre && !(v.pre_sum >= 0 && v.pre_sum <= v.n))
        return InvalidArgument("pre-window conversions must be in [0, n]", Field(i, "pre_sum"));
    } else {
      NS_RETURN_IF_ERROR(CheckColumn(i, v.n, v.sum, v.sum_squares, "sum", "sum_squares"));
      if (v.has_pre)
        NS_RETURN_IF_ERROR(CheckColumn(i, v.n, v.pre_sum, v.pre_sum_squares, "pre_sum", "pre_sum_squares"));
    }
    if (kind == MetricKind::kRatio) {
      NS_RETURN_IF_ERROR(CheckColumn(i, v.n, v.denominator_sum, v.denominator_sum_squares, "denominator_sum",
                                     "denominator_sum_squares"));
      if (v.has_pre)
        NS_RETURN_IF_ERROR(CheckColumn(i, v.n, v.pre_denominator_sum, v.pre_denominator_sum_squares,
                                       "pre_denominator_sum", "pre_denominator_sum_squares"));
    }
    const std::pair<double, const char*> products[] = {
        {v.main_denominator_sum_product, "main_denominator_sum_product"},
        {v.main_pre_sum_product, "main_pre_sum_product"},
        {v.denominator_pre_denominator_sum_product, "denominator_pre_denominator_sum_product"},
        {v.pre_pre_denominator_sum_product, "pre_pre_denominator_sum_product"},
        {v.main_pre_denominator_sum_product, "main_pre_denominator_sum_product"},
        {v.pre_denominator_sum_product, "pre_denominator_sum_product"}};
    for (const auto& [value, name] : products)
      if (!std::isfinite(value)) return InvalidArgument("must be a finite number", Field(i, name));
  }
  return Status::OK();
}

}  // namespace

void VariantAccumulator::Add(double value) {
  s_.n += 1;
  s_.sum += value;
  s_.sum_squares += value * value;
}

void VariantAccumulator::Add(double value, double pre) {
  Add(value);
  s_.has_pre = true;
  s_.pre_sum += pre;
  s_.pre_sum_squares += pre * pre;
  s_.main_pre_sum_product += value * pre;
}

void VariantAccumulator::AddRatio(double numerator, double denominator) {
  Add(numerator);
  s_.denominator_sum += denominator;
  s_.denominator_sum_squares += denominator * denominator;
  s_.main_denominator_sum_product += numerator * denominator;
}

void VariantAccumulator::AddRatio(double numerator, double denominator, double pre_numerator, double pre_denominator) {
  AddRatio(numerator, denominator);
  s_.has_pre = true;
  s_.pre_sum += pre_numerator;
  s_.pre_sum_squares += pre_numerator * pre_numerator;
  s_.main_pre_sum_product += numerator * pre_numerator;
  s_.pre_denominator_sum += pre_denominator;
  s_.pre_denominator_sum_squares += pre_denominator * pre_denominator;
  s_.denominator_pre_denominator_sum_product += denominator * pre_denominator;
  s_.pre_pre_denominator_sum_product += pre_numerator * pre_denominator;
  s_.main_pre_denominator_sum_product += numerator * pre_denominator;
  s_.pre_denominator_sum_product += pre_numerator * denominator;
}

VariantStatistics VariantAccumulator::Statistics(std::string name) const {
  VariantStatistics out = s_;
  out.name = std::move(name);
  return out;
}

double SampleRatioMismatchPValue(const std::vector<double>& persons, const std::vector<double>& weights) {
  std::vector<double> users, w;
  for (size_t i = 0; i < persons.size() && i < weights.size(); i++) {
    if (persons[i] > 0 && weights[i] > 0) {
      users.push_back(persons[i]);
      w.push_back(weights[i]);
    }
  }
  if (users.size() < 2) return 1;
  double total = std::accumulate(users.begin(), users.end(), 0.0);
  double total_weight = std::accumulate(w.begin(), w.end(), 0.0);
  double x = 0;
  for (size_t i = 0; i < users.size(); i++) {
    double expected = w[i] / total_weight * total;
    x += (users[i] - expected) * (users[i] - expected) / expected;
  }
  return ChiSquareSurvival(x, static_cast<double>(users.size() - 1));
}

std::vector<double> AdjustPValues(const std::vector<double>& p_values, Correction correction) {
  std::vector<double> out = p_values;
  size_t m = p_values.size();
  if (correction == Correction::kNone || m == 0) return out;
  if (correction == Correction::kBonferroni) {
    for (double& p : out) p = std::min(p * static_cast<double>(m), 1.0);
    return out;
  }
  // Holm: the k-th smallest (from 0) times m - k, made non-decreasing in that order.
  std::vector<size_t> order(m);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return p_values[x] < p_values[y]; });
  double running = 0;
  for (size_t k = 0; k < m; k++) {
    double p = std::min(p_values[order[k]] * static_cast<double>(m - k), 1.0);
    running = std::max(running, p);
    out[order[k]] = running;
  }
  return out;
}

std::pair<double, double> AdjustedConfidenceInterval(double adjusted_p, double expected, double alpha) {
  if (adjusted_p > 0.999999) return {-kInf, kInf};
  if (expected == 0) return {0, 0};
  double sd = std::fabs(expected / NormalQuantile(1 - adjusted_p / 2));
  double w = NormalQuantile(1 - alpha / 2) * sd;
  return {expected - w, expected + w};
}

double WinsorizationCap(std::vector<double> values, double percentile) {
  if (values.empty()) return kInf;
  std::sort(values.begin(), values.end());
  double rank = std::ceil(percentile * static_cast<double>(values.size()));
  size_t index = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return values[std::min(index, values.size() - 1)];
}

StatusOr<ExperimentAnalysis> AnalyzeExperiment(MetricKind kind, const std::vector<VariantStatistics>& variants,
                                               const AnalysisOptions& options) {
  NS_RETURN_IF_ERROR(Validate(kind, variants, options));
  ExperimentAnalysis out;
  std::vector<Statistic> stats;
  for (const VariantStatistics& v : variants) {
    stats.push_back(MakeStatistic(kind, v));
    Statistic plain = stats.back().Unadjusted();
    out.variants.push_back(VariantSummary{v.name, v.n, plain.Mean(), plain.Variance()});
  }
  for (size_t i = 1; i < stats.size(); i++)
    out.effects.push_back(AnalyzePair(stats[0], stats[i], variants[i].name, options));

  // Several treatments: adjust the p-values of those that have one, and widen two-sided
  // intervals to match (GrowthBook's adjusted intervals: the normal interval whose p-value is
  // the adjusted one, used only when it is wider on both sides).
  if (options.correction != Correction::kNone && options.method != AnalysisMethod::kBayesian) {
    std::vector<size_t> with_p;
    std::vector<double> ps;
    for (size_t i = 0; i < out.effects.size(); i++) {
      if (out.effects[i].ok && std::isfinite(out.effects[i].p_value_unadjusted)) {
        with_p.push_back(i);
        ps.push_back(out.effects[i].p_value_unadjusted);
      }
    }
    std::vector<double> adjusted = AdjustPValues(ps, options.correction);
    for (size_t k = 0; k < with_p.size(); k++) {
      Effect& e = out.effects[with_p[k]];
      e.p_value = adjusted[k];
      if (options.alternative != Alternative::kTwoSided) continue;
      auto [low, high] = AdjustedConfidenceInterval(e.p_value, e.expected, options.alpha);
      if (low < e.ci_low && high > e.ci_high) {
        e.ci_low = low;
        e.ci_high = high;
      }
    }
  }

  std::vector<double> persons, weights = options.traffic_weights;
  double total = 0;
  for (const VariantStatistics& v : variants) {
    persons.push_back(v.n);
    total += v.n;
  }
  if (weights.empty()) weights.assign(variants.size(), 1.0);
  out.srm_p_value = SampleRatioMismatchPValue(persons, weights);
  out.srm_flagged = total >= 100 && out.srm_p_value < 0.001;
  return out;
}

namespace {

// Var of the relative difference of two means by the delta method (GrowthBook's
// frequentistVariance with relative = true).
double RelativeVariance(double var_a, double mean_a, double n_a, double var_b, double mean_b, double n_b) {
  return var_b / (mean_a * mean_a * n_b) + var_a * mean_b * mean_b / (std::pow(mean_a, 4) * n_a);
}

// The variance that makes a fixed-sample normal interval as wide as the sequential one at n.
double SequentialPowerVariance(double variance, double n, double alpha, double tuning) {
  double se = std::sqrt(variance / n);
  double rho = SequentialRho(alpha, tuning);
  double nr2 = n * rho * rho;
  double under = 2 * (nr2 + 1) * std::log(std::sqrt(nr2 + 1) / alpha) / std::pow(n * rho, 2);
  double z_sequential = std::sqrt(n) * std::sqrt(under);
  double se_sequential = se * z_sequential / NormalQuantile(1 - alpha / 2);
  return n * se_sequential * se_sequential;
}

}  // namespace

double PowerAt(double mean, double variance, double mde, double alpha, double total_persons, int variant_count,
               double sequential_tuning) {
  double n = total_persons / variant_count;
  double v = RelativeVariance(variance, mean, n, variance, mean * (1 + mde), n);
  if (sequential_tuning > 0) v = SequentialPowerVariance(v, 2 * n, alpha, sequential_tuning);
  double z = NormalQuantile(1 - alpha / 2), effect = mde / std::sqrt(v);
  return (1 - NormalCdf(z - effect)) + NormalCdf(-z - effect);
}

double MinimumDetectableEffect(double mean, double variance, double power, double alpha, double total_persons,
                               int variant_count, double sequential_tuning) {
  double n = total_persons / variant_count;
  double z = NormalQuantile(1 - alpha / 2) - NormalQuantile(1 - power);
  double v = variance;
  if (sequential_tuning > 0) v = SequentialPowerVariance(variance, 2 * n, alpha, sequential_tuning);
  double m = mean;
  if (!(n > v * z * z / (m * m))) return kNaN;
  // The larger root of the quadratic in the treatment mean x that puts (x - m) / m at z
  // standard errors: (x - m)^2 = z^2 sigma2 (1 + x^2 / m^2).
  double sigma2 = v / n;
  double qa = 1 - z * z * sigma2 / (m * m), qb = -2 * m, qc = m * m - z * z * sigma2;
  double root = (-qb + std::sqrt(qb * qb - 4 * qa * qc)) / (2 * qa);
  return (root - m) / m;
}

StatusOr<PowerEstimate> EstimatePower(double mean, double variance, double mde, double alpha, double power,
                                      double daily_persons, int variant_count, double sequential_tuning) {
  if (!std::isfinite(mean) || mean == 0) return InvalidArgument("mean must be a finite number other than 0", "mean");
  if (!(variance > 0) || !std::isfinite(variance)) return InvalidArgument("variance must be a number > 0", "variance");
  if (!(mde > 0) || !std::isfinite(mde)) return InvalidArgument("mde must be a number > 0", "mde");
  if (!(alpha > 0 && alpha < 1)) return InvalidArgument("alpha must be in (0, 1)", "alpha");
  if (!(power > alpha && power < 1)) return InvalidArgument("power must be in (alpha, 1)", "power");
  if (!(daily_persons >= 0) || !std::isfinite(daily_persons))
    return InvalidArgument("daily_persons must be a number >= 0", "daily_persons");
  if (variant_count < 2) return InvalidArgument("variant_count must be >= 2", "variant_count");
  if (!(sequential_tuning >= 0) || !std::isfinite(sequential_tuning))
    return InvalidArgument("sequential_tuning must be a number >= 0", "sequential_tuning");
  auto power_at = [&](double per_variant) {
    return PowerAt(mean, variance, mde, alpha, per_variant * variant_count, variant_count, sequential_tuning);
  };
  // Power grows with n: double until reached, then bisect on whole persons.
  double lo = 1, hi = 2;
  while (power_at(hi) < power) {
    lo = hi;
    hi *= 2;
    if (hi > 1e15) return InvalidArgument("the effect is too small to detect with any traffic", "mde");
  }
  if (power_at(lo) >= power) hi = lo;
  while (hi - lo > 1) {
    double mid = std::floor((lo + hi) / 2);
    (power_at(mid) >= power ? hi : lo) = mid;
  }
  PowerEstimate p;
  p.persons_per_variant = hi;
  p.power = power_at(hi);
  p.days = daily_persons > 0 ? std::ceil(hi * variant_count / daily_persons) : 0;
  return p;
}

}  // namespace ns::stats
