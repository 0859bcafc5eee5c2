// Tests of ops/forecast.h: exact small cases, degenerate inputs, calibration of the
// prediction interval on synthetic data over many seeds, the anomaly score and the back-test.
#include "ops/forecast.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <numeric>

#include "core/time_zone.h"

namespace ns {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

int32_t Day(const char* s) { return ParseDate(s, "test").value(); }
int Weekday(int32_t d) { return ((d + 4) % 7 + 7) % 7; }

// Deterministic normal deviates (SplitMix64 + Box-Muller), independent of the standard
// library's distribution implementations.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ULL + 1) {}
  double Uniform() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return ((z >> 11) + 0.5) / 9007199254740992.0;
  }
  double Normal() {
    double u = Uniform(), v = Uniform();
    return std::sqrt(-2 * std::log(u)) * std::cos(6.283185307179586 * v);
  }

 private:
  uint64_t s_;
};

ForecastInput Input(int32_t first_day, std::vector<double> values, int32_t p0, int32_t p1,
                    PeriodAggregate agg = PeriodAggregate::kSum) {
  ForecastInput in;
  in.observed.first_day = first_day;
  in.observed.values = std::move(values);
  in.period_first_day = p0;
  in.period_last_day = p1;
  in.aggregate = agg;
  return in;
}

const double kWeekly[7] = {0.6, 1.1, 1.15, 1.1, 1.05, 1.0, 1.0};  // by weekday, Sunday first

TEST(ForecastTest, WeekdayConvention) {
  EXPECT_EQ(Weekday(0), 4);                  // 1970-01-01, a Thursday
  EXPECT_EQ(Weekday(Day("2026-09-27")), 0);  // a Sunday
}

TEST(ForecastTest, ConstantSeriesProjectsConstantTimesDays) {
  const int32_t p0 = Day("2026-09-01"), p1 = Day("2026-09-30");
  // 4 weeks of history before the period and the first 10 days of it.
  auto in = Input(p0 - 28, std::vector<double>(38, 100.0), p0, p1);
  in.target = 3000;
  auto f = ForecastPeriodEnd(in);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->days_observed, 10);
  EXPECT_EQ(f->days_remaining, 20);
  EXPECT_DOUBLE_EQ(f->observed_so_far, 1000);
  EXPECT_NEAR(f->projected, 3000, 1e-9);
  EXPECT_NEAR(f->lower, 3000, 1e-6);
  EXPECT_NEAR(f->upper, 3000, 1e-6);
  EXPECT_DOUBLE_EQ(f->prob_reach_target, 1);
  EXPECT_NE(f->summary.find("by 2026-09-30"), std::string::npos) << f->summary;
}

TEST(ForecastTest, WeeklyPatternRecovered) {
  const int32_t p0 = Day("2026-09-01"), p1 = Day("2026-09-30");
  const int32_t first = p0 - 56;
  std::vector<double> v;
  for (int32_t d = first; d < p0 + 10; ++d) v.push_back(1000 * kWeekly[Weekday(d)]);
  double expected = 0;
  for (int32_t d = p0; d <= p1; ++d) expected += 1000 * kWeekly[Weekday(d)] / (1.0 + 0.0);
  // The factors are normalised to mean 1: the recovered level is 1000 * mean(kWeekly).
  auto f = ForecastPeriodEnd(Input(first, v, p0, p1));
  ASSERT_TRUE(f.ok());
  EXPECT_NEAR(f->projected, expected, 1e-6 * expected);
  EXPECT_LT(f->upper - f->lower, 1e-6 * expected);
  EXPECT_NE(f->method.find("weekday-seasonal (multiplicative)"), std::string::npos) << f->method;

  // The same from history only (period not started): identical projection.
  v.resize(56);
  auto g = ForecastPeriodEnd(Input(first, v, p0, p1));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->days_observed, 0);
  EXPECT_EQ(g->days_remaining, 30);
  EXPECT_DOUBLE_EQ(g->observed_so_far, 0);
  EXPECT_NEAR(g->projected, expected, 1e-6 * expected);
}

TEST(ForecastTest, WeeklyPatternAdditiveWhenValuesCanBeNegative) {
  // Daily net change of something: negative on Sundays.
  const int32_t p0 = Day("2026-09-01"), p1 = Day("2026-09-30");
  const int32_t first = p0 - 56;
  std::vector<double> v;
  for (int32_t d = first; d < p0 + 10; ++d) v.push_back(Weekday(d) == 0 ? -50 : 20);
  double expected = 0;
  for (int32_t d = p0; d <= p1; ++d) expected += Weekday(d) == 0 ? -50 : 20;
  auto f = ForecastPeriodEnd(Input(first, v, p0, p1));
  ASSERT_TRUE(f.ok());
  EXPECT_NEAR(f->projected, expected, 1e-6);
  EXPECT_NE(f->method.find("additive"), std::string::npos) << f->method;
}

TEST(ForecastTest, GrowthFollowsDampedTrend) {
  // Steady growth of 1% of the start level a day with small noise: the trend is kept (damped),
  // so the projection lies above "last level x remaining days" and below linear extrapolation.
  const int32_t p0 = Day("2026-09-01"), p1 = Day("2026-09-30");
  Rng rng(9);
  std::vector<double> v;
  for (int i = 0; i < 66; ++i) v.push_back((1000 + 10 * i) * (1 + 0.01 * rng.Normal()));
  auto f = ForecastPeriodEnd(Input(p0 - 56, v, p0, p1));
  ASSERT_TRUE(f.ok());
  EXPECT_NE(f->method.find("damped trend"), std::string::npos) << f->method;
  double observed = std::accumulate(v.begin() + 56, v.end(), 0.0);
  double flat = observed + 20 * (1000 + 10 * 65);
  double linear = observed;
  for (int i = 66; i < 86; ++i) linear += 1000 + 10 * i;
  EXPECT_GT(f->projected, flat + 0.3 * (linear - flat));
  EXPECT_LE(f->projected, linear * 1.01);
  EXPECT_LT(f->lower, linear);
  EXPECT_GT(f->upper, flat);
}

TEST(ForecastTest, FullPeriodObservedCollapsesToActual) {
  const int32_t p0 = Day("2026-09-01"), p1 = Day("2026-09-07");
  std::vector<double> v = {1, 2, 3, 4, 5, 6, 7, 8, 9};  // two days past the period: ignored
  auto in = Input(p0, v, p0, p1);
  in.target = 28;
  auto f = ForecastPeriodEnd(in);
  ASSERT_TRUE(f.ok());
  EXPECT_DOUBLE_EQ(f->projected, 28);
  EXPECT_DOUBLE_EQ(f->observed_so_far, 28);
  EXPECT_DOUBLE_EQ(f->lower, 28);
  EXPECT_DOUBLE_EQ(f->upper, 28);
  EXPECT_EQ(f->stddev, 0);
  EXPECT_EQ(f->days_remaining, 0);
  EXPECT_DOUBLE_EQ(f->prob_reach_target, 1);  // meets exactly
  in.target = 28.5;
  EXPECT_DOUBLE_EQ(ForecastPeriodEnd(in)->prob_reach_target, 0);
  in.higher_is_better = false;
  EXPECT_DOUBLE_EQ(ForecastPeriodEnd(in)->prob_reach_target, 1);
  in.target = std::nullopt;
  EXPECT_TRUE(std::isnan(ForecastPeriodEnd(in)->prob_reach_target));
  EXPECT_EQ(ForecastPeriodEnd(in)->summary, "final 28.0 for the period ending 2026-09-07");
}

// A noisy series with weekly pattern, used by several tests.
std::vector<double> Noisy(int n, int32_t first, uint64_t seed, double level = 1000, double noise = 0.05) {
  Rng rng(seed);
  std::vector<double> v;
  for (int i = 0; i < n; ++i) v.push_back(level * kWeekly[Weekday(first + i)] * (1 + noise * rng.Normal()));
  return v;
}

TEST(ForecastTest, TargetProbabilityMonotoneInTarget) {
  const int32_t p0 = Day("2026-09-01"), p1 = Day("2026-09-30");
  auto in = Input(p0 - 42, Noisy(52, p0 - 42, 7), p0, p1);
  auto base = ForecastPeriodEnd(in);
  ASSERT_TRUE(base.ok());
  double prev_hi = 2, prev_lo = -1;
  for (double t = base->projected * 0.8; t <= base->projected * 1.2; t += base->projected * 0.01) {
    in.target = t;
    in.higher_is_better = true;
    double hi = ForecastPeriodEnd(in)->prob_reach_target;
    in.higher_is_better = false;
    double lo = ForecastPeriodEnd(in)->prob_reach_target;
    EXPECT_LE(hi, prev_hi);
    EXPECT_GE(lo, prev_lo);
    EXPECT_NEAR(hi + lo, 1, 1e-12);
    prev_hi = hi;
    prev_lo = lo;
  }
  // At the interval bounds the probability is the tail mass, (1 - 0.8) / 2.
  in.higher_is_better = true;
  in.target = base->upper;
  EXPECT_NEAR(ForecastPeriodEnd(in)->prob_reach_target, 0.1, 1e-6);
  in.target = base->lower;
  EXPECT_NEAR(ForecastPeriodEnd(in)->prob_reach_target, 0.9, 1e-6);
  in.target = base->projected;
  EXPECT_NEAR(ForecastPeriodEnd(in)->prob_reach_target, 0.5, 1e-6);
}

TEST(ForecastTest, MeanWithWeights) {
  const int32_t p0 = Day("2026-09-01"), p1 = Day("2026-09-30");
  // Constant conversion 20% with weekday-varying traffic: the projection is 20%.
  ForecastInput in = Input(p0 - 28, std::vector<double>(38, 0.2), p0, p1, PeriodAggregate::kMean);
  for (int i = 0; i < 38; ++i) in.observed.weights.push_back(500 * kWeekly[Weekday(p0 - 28 + i)]);
  in.target = 0.18;
  auto f = ForecastPeriodEnd(in);
  ASSERT_TRUE(f.ok());
  EXPECT_NEAR(f->projected, 0.2, 1e-12);
  EXPECT_NEAR(f->observed_so_far, 0.2, 1e-12);
  EXPECT_DOUBLE_EQ(f->prob_reach_target, 1);
  EXPECT_NE(f->summary.find("20.0%"), std::string::npos) << f->summary;

  // Fully observed: exactly sum(v * w) / sum(w), not the plain mean.
  ForecastInput g = Input(p0, {0.1, 0.5}, p0, p0 + 1, PeriodAggregate::kMean);
  g.observed.weights = {300, 100};
  auto r = ForecastPeriodEnd(g);
  ASSERT_TRUE(r.ok());
  EXPECT_DOUBLE_EQ(r->projected, (0.1 * 300 + 0.5 * 100) / 400);
  g.observed.weights.clear();
  EXPECT_DOUBLE_EQ(ForecastPeriodEnd(g)->projected, 0.3);

  // Half observed at 10% on heavy days; the rest forecast: the projection is between.
  ForecastInput h = Input(p0 - 28, std::vector<double>(28, 0.3), p0, p1, PeriodAggregate::kMean);
  for (int i = 0; i < 15; ++i) h.observed.values.push_back(0.1);
  h.observed.weights.assign(43, 100);
  auto q = ForecastPeriodEnd(h);
  ASSERT_TRUE(q.ok());
  EXPECT_NEAR(q->observed_so_far, 0.1, 1e-12);
  EXPECT_GT(q->projected, 0.1);
  EXPECT_LT(q->projected, 0.3);
  EXPECT_GE(q->lower, 0.05 - 1e-12);  // rates are >= 0: at least the observed half's share
  EXPECT_LE(q->upper, 0.55 + 1e-12);  // and <= 1
}

TEST(ForecastTest, OneDayOfHistoryGivesWideButSaneInterval) {
  const int32_t p0 = Day("2026-09-01"), p1 = Day("2026-09-30");
  auto in = Input(p0, {50}, p0, p1);
  in.target = 1500;
  auto f = ForecastPeriodEnd(in);
  ASSERT_TRUE(f.ok());
  EXPECT_NEAR(f->projected, 1500, 1e-9);
  EXPECT_GE(f->lower, 50);
  EXPECT_GT(f->upper - f->lower, 500);
  EXPECT_TRUE(std::isfinite(f->upper));
  EXPECT_NEAR(f->prob_reach_target, 0.5, 1e-9);
  EXPECT_NE(f->method.find("non-seasonal"), std::string::npos) << f->method;
}

TEST(ForecastTest, AllZeros) {
  const int32_t p0 = Day("2026-09-01"), p1 = Day("2026-09-30");
  auto in = Input(p0 - 20, std::vector<double>(30, 0.0), p0, p1);
  in.target = 10;
  auto f = ForecastPeriodEnd(in);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->projected, 0);
  EXPECT_EQ(f->lower, 0);
  EXPECT_EQ(f->upper, 0);
  EXPECT_EQ(f->prob_reach_target, 0);
  in.target = 0;
  EXPECT_EQ(ForecastPeriodEnd(in)->prob_reach_target, 1);
}

TEST(ForecastTest, MissingDaysAreForecastNotZero) {
  const int32_t p0 = Day("2026-09-01"), p1 = Day("2026-09-30");
  std::vector<double> v(38, 100.0);
  v[3] = kNaN;   // history
  v[30] = kNaN;  // inside the period (day 3)
  v[31] = kNaN;
  auto f = ForecastPeriodEnd(Input(p0 - 28, v, p0, p1));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->days_observed, 8);
  EXPECT_EQ(f->days_remaining, 22);
  EXPECT_DOUBLE_EQ(f->observed_so_far, 800);
  EXPECT_NEAR(f->projected, 3000, 1e-9);

  // A series that starts inside the period: the days before it are forecast too.
  auto g = ForecastPeriodEnd(Input(p0 + 5, std::vector<double>(10, 100.0), p0, p1));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->days_observed, 10);
  EXPECT_NEAR(g->projected, 3000, 1e-9);

  // Nothing finite at all: an error, not a made-up number.
  auto h = ForecastPeriodEnd(Input(p0, {kNaN, kNaN}, p0, p1));
  EXPECT_EQ(h.status().code(), StatusCode::kInvalidArgument);
}

TEST(ForecastTest, PeriodNotStartedUsesHistory) {
  const int32_t p0 = Day("2026-10-01"), p1 = Day("2026-10-31");
  // History ends 5 days before the period.
  auto f = ForecastPeriodEnd(Input(p0 - 40, Noisy(35, p0 - 40, 3), p0, p1));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->days_observed, 0);
  EXPECT_EQ(f->days_remaining, 31);
  double expected = 0;
  for (int32_t d = p0; d <= p1; ++d) expected += 1000 * kWeekly[Weekday(d)];
  EXPECT_NEAR(f->projected, expected, 0.05 * expected);
  EXPECT_LT(f->lower, expected);
  EXPECT_GT(f->upper, expected);
}

TEST(ForecastTest, HugeSpikeDoesNotMoveTheLevel) {
  const int32_t p0 = Day("2026-09-01"), p1 = Day("2026-09-30");
  auto v = Noisy(66, p0 - 56, 11);
  auto clean = ForecastPeriodEnd(Input(p0 - 56, v, p0, p1));
  v[60] *= 100;  // inside the period: counted as observed, but the level stays put
  v[40] *= 100;  // in history
  auto f = ForecastPeriodEnd(Input(p0 - 56, v, p0, p1));
  ASSERT_TRUE(f.ok() && clean.ok());
  double spike = v[60] - v[60] / 100;
  EXPECT_NEAR(f->projected - spike, clean->projected, 0.05 * clean->projected);
}

TEST(ForecastTest, InvalidArguments) {
  const int32_t p0 = Day("2026-09-01");
  EXPECT_EQ(ForecastPeriodEnd(Input(p0, {}, p0, p0)).status().field(), "observed");
  auto bad_range = ForecastPeriodEnd(Input(p0, {1}, p0, p0 - 1));
  EXPECT_EQ(bad_range.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad_range.status().message(), "forecast: period_last_day 2026-08-31 is before period_first_day 2026-09-01");
  auto in = Input(p0, {1}, p0, p0 + 3);
  in.interval = 1;
  EXPECT_EQ(ForecastPeriodEnd(in).status().field(), "interval");
  in.interval = 0.8;
  in.observed.weights = {1, 2};
  EXPECT_EQ(ForecastPeriodEnd(in).status().message(), "forecast: weights has 2 entries for 1 values");
  in.observed.weights.clear();
  in.target = std::numeric_limits<double>::infinity();
  EXPECT_EQ(ForecastPeriodEnd(in).status().field(), "target");
}

TEST(ForecastTest, SummaryLine) {
  const int32_t p0 = Day("2026-09-01"), p1 = Day("2026-09-30");
  auto in = Input(p0 - 42, Noisy(57, p0 - 42, 5, 4500), p0, p1);
  in.target = 150000;
  auto f = ForecastPeriodEnd(in);
  ASSERT_TRUE(f.ok());
  // e.g. "at this pace 136k ± 3.1k by 2026-09-30; 1% chance of 150k"
  EXPECT_EQ(f->summary.rfind("at this pace 13", 0), 0u) << f->summary;
  EXPECT_NE(f->summary.find("k ± "), std::string::npos) << f->summary;
  EXPECT_NE(f->summary.find("k by 2026-09-30; "), std::string::npos) << f->summary;
  EXPECT_NE(f->summary.find("% chance of 150k"), std::string::npos) << f->summary;
}

// Calibration: the 80% interval must contain the actual about 80% of the time when the data
// follow the assumed kind of process. Two processes: i.i.d. noise around a weekly pattern,
// and a local level (random walk + noise), each at two points of the period.
double Coverage(bool random_walk, int observed_days, int seeds) {
  int inside = 0;
  const int32_t p0 = Day("2026-09-01"), p1 = Day("2026-09-30");
  const int32_t first = p0 - 56;
  for (int seed = 0; seed < seeds; ++seed) {
    Rng rng(1000 + seed);
    std::vector<double> v;
    double level = 1000, actual = 0;
    for (int32_t d = first; d <= p1; ++d) {
      if (random_walk) level += 10 * rng.Normal();
      double x = level * kWeekly[Weekday(d)] * (1 + 0.08 * rng.Normal());
      v.push_back(x);
      if (d >= p0) actual += x;
    }
    v.resize(56 + observed_days);
    auto f = ForecastPeriodEnd(Input(first, v, p0, p1));
    if (f.ok() && f->lower <= actual && actual <= f->upper) ++inside;
  }
  return static_cast<double>(inside) / seeds;
}

TEST(ForecastTest, IntervalCoverageOnSyntheticData) {
  for (bool rw : {false, true}) {
    for (int observed : {0, 10, 20}) {
      double c = Coverage(rw, observed, 400);
      std::printf("coverage random_walk=%d observed=%d: %.3f\n", rw, observed, c);
      EXPECT_GE(c, 0.7) << "random_walk=" << rw << " observed=" << observed;
      EXPECT_LE(c, 0.9) << "random_walk=" << rw << " observed=" << observed;
    }
  }
}

// ---- ScoreAnomaly

DailySeries Trailing(int32_t first, std::vector<double> v) {
  DailySeries s;
  s.first_day = first;
  s.values = std::move(v);
  return s;
}

TEST(AnomalyTest, SpikeDetected) {
  const int32_t day = Day("2026-09-15");
  auto s = Trailing(day - 28, Noisy(28, day - 28, 21));
  double expected = 1000 * kWeekly[Weekday(day)];
  AnomalyScore a = ScoreAnomaly(s, day, 3 * expected);
  EXPECT_TRUE(a.anomalous) << a.explanation;
  EXPECT_GT(a.score, 3.5);
  EXPECT_NEAR(a.expected, expected, 0.08 * expected);
  AnomalyScore drop = ScoreAnomaly(s, day, 0.3 * expected);
  EXPECT_TRUE(drop.anomalous);
  EXPECT_LT(drop.score, -3.5);
  AnomalyScore normal = ScoreAnomaly(s, day, expected * 1.02);
  EXPECT_FALSE(normal.anomalous) << normal.explanation;
}

TEST(AnomalyTest, WeekdayPatternNotFlagged) {
  // Strong weekend dip: a Sunday at 40% of a weekday is normal.
  const int32_t sunday = Day("2026-09-27");
  ASSERT_EQ(Weekday(sunday), 0);
  Rng rng(4);
  std::vector<double> v;
  for (int32_t d = sunday - 28; d < sunday; ++d)
    v.push_back((Weekday(d) == 0 ? 400 : 1000) * (1 + 0.03 * rng.Normal()));
  auto s = Trailing(sunday - 28, v);
  AnomalyScore a = ScoreAnomaly(s, sunday, 410);
  EXPECT_FALSE(a.anomalous) << a.explanation;
  EXPECT_NEAR(a.expected, 400, 20);
  EXPECT_NE(a.explanation.find("Sunday"), std::string::npos) << a.explanation;
  // ...but a Monday at that level is.
  auto monday = Trailing(sunday - 27, std::vector<double>(v.begin() + 1, v.end()));
  monday.values.push_back(400);  // the Sunday, normal
  EXPECT_TRUE(ScoreAnomaly(monday, sunday + 1, 410).anomalous);
}

TEST(AnomalyTest, RobustToOneOutlierInHistory) {
  const int32_t day = Day("2026-09-15");
  auto v = Noisy(28, day - 28, 31);
  auto clean = ScoreAnomaly(Trailing(day - 28, v), day, 1500);
  v[20] = 1e7;  // one absurd day in the history
  auto a = ScoreAnomaly(Trailing(day - 28, v), day, 1500);
  EXPECT_TRUE(a.anomalous);
  EXPECT_NEAR(a.expected, clean.expected, 0.05 * clean.expected);
  EXPECT_NEAR(a.score, clean.score, 0.3 * std::fabs(clean.score));
}

TEST(AnomalyTest, DegenerateHistories) {
  const int32_t day = Day("2026-09-15");
  // Too short.
  auto short_h = ScoreAnomaly(Trailing(day - 5, {1, 2, 3, 4, 5}), day, 100);
  EXPECT_FALSE(short_h.anomalous);
  EXPECT_EQ(short_h.score, 0);
  EXPECT_EQ(short_h.explanation, "not enough history: 5 of the 28 previous days have a value (7 needed)");
  // Constant integer counts: Poisson floor, so 100 -> 105 is normal, 100 -> 200 is not.
  auto flat = Trailing(day - 28, std::vector<double>(28, 100));
  EXPECT_FALSE(ScoreAnomaly(flat, day, 105).anomalous);
  EXPECT_TRUE(ScoreAnomaly(flat, day, 200).anomalous);
  EXPECT_NEAR(ScoreAnomaly(flat, day, 200).score, 10, 1e-9);
  // All zeros: a 0 is normal, a 10 is not; nothing is infinite.
  auto zeros = Trailing(day - 28, std::vector<double>(28, 0));
  EXPECT_EQ(ScoreAnomaly(zeros, day, 0).score, 0);
  EXPECT_TRUE(ScoreAnomaly(zeros, day, 10).anomalous);
  EXPECT_TRUE(std::isfinite(ScoreAnomaly(zeros, day, 10).score));
  // Missing days are skipped; days outside [day-28, day-1] ignored.
  std::vector<double> v(40, 100);
  for (int i = 0; i < 40; i += 3) v[i] = kNaN;
  v[39] = 1e9;  // the scored day itself and after: not history
  auto a = ScoreAnomaly(Trailing(day - 39, v), day - 1, 100);
  EXPECT_FALSE(a.anomalous);
}

// ---- Backtest

TEST(BacktestTest, SyntheticSeriesIsCalibrated) {
  DailySeries s;
  s.first_day = Day("2026-01-01");
  s.values = Noisy(360, s.first_day, 77);
  BacktestResult r = Backtest(s, 30, PeriodAggregate::kSum);
  EXPECT_EQ(r.forecasts, 24);  // 12 periods x 2 cuts
  EXPECT_LT(r.mape, 0.05);
  EXPECT_LT(std::fabs(r.bias), 0.03);
  EXPECT_GE(r.coverage, 0.6);
  EXPECT_GT(r.mean_width, 0);

  // Rates with weights.
  DailySeries rate;
  rate.first_day = s.first_day;
  Rng rng(5);
  for (int i = 0; i < 360; ++i) {
    rate.values.push_back(0.2 + 0.01 * rng.Normal());
    rate.weights.push_back(1000 * kWeekly[Weekday(s.first_day + i)]);
  }
  BacktestResult q = Backtest(rate, 30, PeriodAggregate::kMean);
  EXPECT_EQ(q.forecasts, 24);
  EXPECT_LT(q.mape, 0.03);

  EXPECT_EQ(Backtest(s, 0, PeriodAggregate::kSum).forecasts, 0);
  EXPECT_EQ(Backtest(s, 400, PeriodAggregate::kSum).forecasts, 0);
}

}  // namespace
}  // namespace ns
