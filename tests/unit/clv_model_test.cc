// The CLV models (src/stats/bg_nbd, gamma_gamma, nelder_mead):
// - the optimiser on known minima;
// - the closed-form BG/NBD likelihood, P(alive) and conditional expected purchases against a
//   deliberately naive version written here: the per-(lambda, p) likelihood of the paper's
//   story integrated numerically over the Gamma and Beta mixing densities, and E[purchases]
//   as P(alive) times the posterior mean of (1 - exp(-lambda p t)) / p, integrated likewise
//   (no hypergeometric function), on random parameters and customers;
// - the fit on the CDNOW sample against the figures lifetimes publishes (docs/queries.md
//   "CLV": its Quickstart), read from shared/datasets/cdnow (skipped when absent).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "stats/bg_nbd.h"
#include "stats/gamma_gamma.h"
#include "stats/nelder_mead.h"

namespace ns::stats {
namespace {

TEST(NelderMead, FindsTheMinimumOfRosenbrockAndAQuadratic) {
  auto rosen = [](const std::vector<double>& v) {
    return 100 * std::pow(v[1] - v[0] * v[0], 2) + std::pow(1 - v[0], 2);
  };
  NelderMeadResult r = NelderMead(rosen, {-1.2, 1});
  EXPECT_NEAR(r.x[0], 1, 1e-5);
  EXPECT_NEAR(r.x[1], 1, 1e-5);
  auto quad = [](const std::vector<double>& v) {
    double s = 0;
    for (size_t i = 0; i < v.size(); i++) s += (i + 1.0) * std::pow(v[i] - 0.5 * i, 2);
    return s;
  };
  r = NelderMead(quad, {3, 3, 3, 3});
  for (size_t i = 0; i < 4; i++) EXPECT_NEAR(r.x[i], 0.5 * i, 1e-5) << i;
  // Outside the domain (NaN / inf) is never chosen.
  auto walled = [](const std::vector<double>& v) { return v[0] < 0.25 ? std::nan("") : (v[0] - 1) * (v[0] - 1); };
  r = NelderMead(walled, {2});
  EXPECT_NEAR(r.x[0], 1, 1e-5);
}

TEST(Hyp2F1, KnownValues) {
  // 2F1(1, 1; 2; z) = -ln(1 - z) / z; 2F1(a, b; b; z) = (1 - z)^-a.
  for (double z : {0.0, 0.1, 0.5, 0.9, 0.99}) {
    EXPECT_NEAR(Hyp2F1(1, 1, 2, z), z == 0 ? 1 : -std::log(1 - z) / z, 1e-9) << z;
    EXPECT_NEAR(Hyp2F1(0.7, 2.5, 2.5, z), std::pow(1 - z, -0.7), 1e-9) << z;
  }
}

// ---- the naive reference ----

// Composite Simpson over [lo, hi] with n (even) intervals.
template <typename F>
double Simpson(F f, double lo, double hi, int n) {
  const double h = (hi - lo) / n;
  double s = f(lo) + f(hi);
  for (int i = 1; i < n; i++) s += (i % 2 ? 4 : 2) * f(lo + i * h);
  return s * h / 3;
}

// E over p ~ Beta(a, b) of h(p), in s = logit(p): the integrand h(p) p^a (1-p)^b is a
// smooth bump there whatever a and b, so a plain Simpson rule is accurate.
template <typename H>
double BetaMean(H h, double a, double b) {
  const double log_beta = std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b);
  return Simpson(
      [&](double s) {
        const double p = 1 / (1 + std::exp(-s));
        return h(p) * std::exp(a * std::log(p) + b * std::log1p(-p) - log_beta);
      },
      -80 / a, 80 / b, 20000);
}

// E over lambda ~ Gamma(r, alpha) of g(lambda), in s = log(lambda) likewise.
template <typename G>
double GammaMean(G g, double r, double alpha) {
  const double log_norm = r * std::log(alpha) - std::lgamma(r);
  return Simpson(
      [&](double s) {
        const double l = std::exp(s);
        return g(l) * std::exp(log_norm + r * s - alpha * l);
      },
      -80 / r, std::log((r + 60 * std::sqrt(r) + 60) / alpha), 20000);
}

// The paper's story for one customer given (lambda, p): alive through T after x purchases, or
// dropped out right after the last one at t_x.
double NaiveLikelihood(const BgNbdParams& P, double x, double tx, double T) {
  // The lambda integrals of lambda^x e^(-lambda s) are done numerically too.
  const double alive = GammaMean([&](double l) { return std::pow(l, x) * std::exp(-l * T); }, P.r, P.alpha);
  const double dropped =
      x > 0 ? GammaMean([&](double l) { return std::pow(l, x) * std::exp(-l * tx); }, P.r, P.alpha) : 0;
  return BetaMean(
      [&](double p) { return std::pow(1 - p, x) * alive + (x > 0 ? p * std::pow(1 - p, x - 1) * dropped : 0); }, P.a,
      P.b);
}

double NaivePAlive(const BgNbdParams& P, double x, double tx, double T) {
  const double alive = GammaMean([&](double l) { return std::pow(l, x) * std::exp(-l * T); }, P.r, P.alpha) *
                       BetaMean([&](double p) { return std::pow(1 - p, x); }, P.a, P.b);
  return alive / NaiveLikelihood(P, x, tx, T);
}

// Given alive at T: lambda ~ Gamma(r + x, alpha + T), p ~ Beta(a, b + x), and the purchases
// in the next t are (1 - exp(-lambda p t)) / p in expectation (eq. 7 of the paper); the mean
// of exp(-lambda p t) over lambda is the Gamma's Laplace transform.
double NaiveExpected(const BgNbdParams& P, double t, double x, double tx, double T) {
  const double inner =
      BetaMean([&](double p) { return -std::expm1(-(P.r + x) * std::log1p(p * t / (P.alpha + T))) / p; }, P.a, P.b + x);
  return NaivePAlive(P, x, tx, T) * inner;
}

TEST(BgNbd, ClosedFormsAgreeWithNumericalIntegrationOnRandomParameters) {
  std::mt19937_64 rng(20261206);
  std::uniform_real_distribution<double> u(0, 1);
  for (int trial = 0; trial < 40; trial++) {
    BgNbdParams P{0.2 + 2 * u(rng), 0.5 + 10 * u(rng), 0.3 + 3 * u(rng), 0.5 + 4 * u(rng)};
    const double T = 1 + 50 * u(rng);
    const double x = std::floor(12 * u(rng));
    const double tx = x > 0 ? T * u(rng) : 0;
    const double t = trial % 4 == 0 ? 1000 * u(rng) : 1 + 60 * u(rng);  // long horizons: z near 1
    SCOPED_TRACE("trial " + std::to_string(trial));
    const double naive_ll = std::log(NaiveLikelihood(P, x, tx, T));
    EXPECT_NEAR(BgNbdLogLikelihood(P, x, tx, T), naive_ll, 1e-8 * (1 + std::fabs(naive_ll)));
    EXPECT_NEAR(BgNbdProbabilityAlive(P, x, tx, T), NaivePAlive(P, x, tx, T), 1e-8);
    const double e = NaiveExpected(P, t, x, tx, T);
    EXPECT_NEAR(BgNbdConditionalExpectedPurchases(P, t, x, tx, T), e, 1e-7 * (1 + e));
  }
}

TEST(BgNbd, TheIntegralFallbackAgreesWithTheSeriesAndHandlesExtremeParameters) {
  std::mt19937_64 rng(99);
  std::uniform_real_distribution<double> u(0, 1);
  for (int trial = 0; trial < 200; trial++) {
    BgNbdParams P{0.05 + 3 * u(rng), 0.5 + 50 * u(rng), 0.05 + 4 * u(rng), 0.05 + 6 * u(rng)};
    const double T = 1 + 300 * u(rng), x = std::floor(40 * u(rng)), tx = x > 0 ? T * u(rng) : 0;
    const double t = 1 + 400 * u(rng);
    const double series = BgNbdConditionalExpectedPurchases(P, t, x, tx, T);
    EXPECT_NEAR(BgNbdConditionalExpectedPurchasesByIntegral(P, t, x, tx, T), series, 1e-7 * (1 + series)) << trial;
  }
  // Degenerate fits of small data (no dropout, huge a and b): finite, and P(alive) times the
  // Poisson-like limit r + x over alpha + T per unit of time at most.
  for (const BgNbdParams& P :
       {BgNbdParams{0.9, 6.5, 2e5, 4.8e6}, BgNbdParams{0.97, 80, 1e5, 1.5e5}, BgNbdParams{1e5, 3e5, 1e5, 1e-5}}) {
    const double e = BgNbdConditionalExpectedPurchases(P, 300, 13, 21, 22);
    EXPECT_TRUE(std::isfinite(e));
    EXPECT_GE(e, 0);
    EXPECT_LE(e, (P.r + 13) / (P.alpha + 22) * 300 * (1 + 1e-9));
  }
}

TEST(BgNbd, FitRecoversSimulatedParameters) {
  // Customers simulated from the model's story; the fit finds the parameters back roughly
  // (sampling error) and its likelihood is at least the true parameters' (it is the maximum).
  std::mt19937_64 rng(7);
  const BgNbdParams truth{0.5, 6, 0.8, 2.5};
  std::vector<double> xs, txs, Ts;
  for (int i = 0; i < 20000; i++) {
    std::gamma_distribution<double> lam(truth.r, 1 / truth.alpha);
    std::gamma_distribution<double> ga(truth.a, 1), gb(truth.b, 1);
    double l = lam(rng), ya = ga(rng), yb = gb(rng), p = ya / (ya + yb);
    double T = 20 + (i % 20);
    double tcur = 0, last = 0;
    int x = 0;
    std::exponential_distribution<double> gap(l);
    std::bernoulli_distribution die(p);
    for (;;) {
      tcur += gap(rng);
      if (tcur > T) break;
      x++, last = tcur;
      if (die(rng)) break;
    }
    xs.push_back(x), txs.push_back(last), Ts.push_back(T);
  }
  auto groups = GroupCustomers(xs, txs, Ts);
  BgNbdFit fit = FitBgNbd(groups);
  EXPECT_TRUE(fit.converged);
  EXPECT_GE(fit.log_likelihood, BgNbdLogLikelihood(truth, groups) - 1e-6);
  EXPECT_NEAR(fit.params.r, truth.r, 0.1);
  EXPECT_NEAR(fit.params.alpha / truth.alpha, 1, 0.25);
  // Grouping changes nothing: the sum over customers one by one is the same.
  double one_by_one = 0;
  for (size_t i = 0; i < xs.size(); i++) one_by_one += BgNbdLogLikelihood(fit.params, xs[i], txs[i], Ts[i]);
  EXPECT_NEAR(one_by_one, fit.log_likelihood, 1e-6 * std::fabs(one_by_one));
}

TEST(GammaGamma, ExpectedValueIsTheWeightedMeanAndTheFitIsAMaximum) {
  GammaGammaParams g{6, 4, 15};
  EXPECT_DOUBLE_EQ(GammaGammaExpectedAverageValue(g, 0, 0), 6 * 15 / 3.0);
  const double x = 3, m = 40, w = 6 * x / (6 * x + 3);
  EXPECT_NEAR(GammaGammaExpectedAverageValue(g, x, m), (1 - w) * 30 + w * m, 1e-12);
  // Simulate spend: nu ~ Gamma(q, rate v), each value ~ Gamma(p, rate nu).
  std::mt19937_64 rng(11);
  std::vector<double> xs, ms;
  for (int i = 0; i < 5000; i++) {
    double nu = std::gamma_distribution<double>(g.q, 1 / g.v)(rng);
    int n = 1 + i % 5;
    double s = 0;
    for (int k = 0; k < n; k++) s += std::gamma_distribution<double>(g.p, 1 / nu)(rng);
    xs.push_back(n), ms.push_back(s / n);
  }
  GammaGammaFit fit = FitGammaGamma(xs, ms);
  double ll_truth = 0;
  for (size_t i = 0; i < xs.size(); i++) ll_truth += GammaGammaLogLikelihood(g, xs[i], ms[i]);
  EXPECT_GE(fit.log_likelihood, ll_truth - 1e-6);
  EXPECT_NEAR(fit.params.p * fit.params.v / (fit.params.q - 1), 30, 3);
}

// ---- CDNOW: lifetimes' published figures ----

std::string CdnowDir() {
  std::vector<std::string> c;
  if (const char* e = std::getenv("NORTHSTAR_CDNOW_DIR")) c.push_back(e);
  c.push_back(std::filesystem::path(__FILE__).parent_path().string() + "/../../../shared/datasets/cdnow");
  c.push_back("/work/shared/datasets/cdnow");
  for (const auto& d : c)
    if (std::filesystem::exists(d + "/cdnow_customers_summary_with_transactions.csv")) return d;
  return "";
}

struct CdnowRow {
  double x, tx, T, zbar;
};

std::map<int, CdnowRow> ReadCdnowSummary(const std::string& dir) {
  std::ifstream in(dir + "/cdnow_customers_summary_with_transactions.csv");
  std::map<int, CdnowRow> rows;
  std::string line;
  std::getline(in, line);  // ID,x,t_x,T,zbar
  while (std::getline(in, line)) {
    for (char& ch : line)
      if (ch == ',') ch = ' ';
    std::istringstream ls(line);
    int id;
    CdnowRow r;
    if (ls >> id >> r.x >> r.tx >> r.T >> r.zbar) rows[id] = r;
  }
  return rows;
}

TEST(CdnowPublished, BgNbdAndGammaGammaMatchLifetimesQuickstart) {
  const std::string dir = CdnowDir();
  if (dir.empty()) GTEST_SKIP() << "shared/datasets/cdnow not found (set NORTHSTAR_CDNOW_DIR)";
  auto rows = ReadCdnowSummary(dir);
  ASSERT_EQ(rows.size(), 2357u);
  std::vector<double> xs, txs, Ts, zs;
  for (const auto& [id, r] : rows) xs.push_back(r.x), txs.push_back(r.tx), Ts.push_back(r.T), zs.push_back(r.zbar);
  BgNbdFit fit = FitBgNbd(GroupCustomers(xs, txs, Ts));
  ASSERT_TRUE(fit.converged);
  // lifetimes' bgf.summary: r 0.242593, alpha 4.413532, a 0.792886, b 2.425752 (its optimiser
  // stops within ~1e-5 of the maximum: we hold the figures to 4 significant digits).
  EXPECT_NEAR(fit.params.r, 0.242593, 0.0001);
  EXPECT_NEAR(fit.params.alpha, 4.413532, 0.001);
  EXPECT_NEAR(fit.params.a, 0.792886, 0.0005);
  EXPECT_NEAR(fit.params.b, 2.425752, 0.002);
  // Fader, Hardie & Lee (2005), Table 1 / BTYD: log-likelihood -9582.4.
  EXPECT_NEAR(fit.log_likelihood, -9582.4, 0.05);
  // Quickstart "Ranking customers": expected purchases in the next week (t = 1).
  const std::map<int, double> next_week = {
      {509, 0.424877}, {841, 0.474738}, {1981, 0.486526}, {157, 0.662396}, {1516, 0.710623}};
  for (const auto& [id, want] : next_week) {
    const CdnowRow& r = rows.at(id);
    EXPECT_NEAR(BgNbdConditionalExpectedPurchases(fit.params, 1, r.x, r.tx, r.T), want, 5e-5) << id;
  }
  // Gamma-Gamma on the 946 repeat buyers: "p: 6.25, q: 3.74, v: 15.45".
  std::vector<double> rx, rm;
  for (const auto& [id, r] : rows)
    if (r.x > 0) rx.push_back(r.x), rm.push_back(r.zbar);
  ASSERT_EQ(rx.size(), 946u);
  GammaGammaFit gg = FitGammaGamma(rx, rm);
  ASSERT_TRUE(gg.converged);
  EXPECT_NEAR(gg.params.p, 6.25, 0.005);
  EXPECT_NEAR(gg.params.q, 3.74, 0.005);
  EXPECT_NEAR(gg.params.v, 15.45, 0.005);
  // conditional_expected_average_profit of customers 1..10 (6 decimals published).
  const double expected_value[10] = {24.658619, 18.911489, 35.170981, 35.170981, 35.170981,
                                     71.462843, 18.911489, 35.170981, 27.282408, 35.170981};
  for (int id = 1; id <= 10; id++) {
    const CdnowRow& r = rows.at(id);
    EXPECT_NEAR(GammaGammaExpectedAverageValue(gg.params, r.x, r.zbar), expected_value[id - 1], 0.002) << id;
  }
  // customer_lifetime_value(time=12, discount_rate=0.01), as lifetimes computes it with its
  // default freq "D" on this weekly data: steps ending at 30, 60, ..., 360 periods, step i
  // discounted by 1.01^-i.
  std::vector<double> ends, discounts;
  for (int i = 1; i <= 12; i++) ends.push_back(30.0 * i), discounts.push_back(std::pow(1.01, -i));
  const double clv[10] = {140.096211,  18.943467, 38.180574, 38.180574,  38.180574,
                          1003.868107, 28.109683, 38.180574, 167.418216, 38.180574};
  for (int id = 1; id <= 10; id++) {
    const CdnowRow& r = rows.at(id);
    const double value = GammaGammaExpectedAverageValue(gg.params, r.x, r.zbar);
    EXPECT_NEAR(BgNbdDiscountedValue(fit.params, value, r.x, r.tx, r.T, ends, discounts), clv[id - 1],
                1e-3 * clv[id - 1])
        << id;
  }
}

}  // namespace
}  // namespace ns::stats
