// Period-end forecaster, anomaly score and back-test. The method and its limits are
// described in docs/forecasting.md; the choices in docs/decisions.md ("Forecasting").
//
// Model (per KPI, refitted on every call; O(history * grid + horizon^2), history <= 56 days):
//   v_d = s_{wd(d)} * y_d  (multiplicative; additive v_d = y_d + s_{wd(d)} when values
//                           can be negative or the mean is 0)
//   y_d = l_{d-1} + phi b_{d-1} + e_d,  l_d = l_{d-1} + phi b_{d-1} + alpha e_d,
//   b_d = phi b_{d-1} + beta e_d      (exponential smoothing; beta = 0 is the local-level
//                                      model, ARIMA(0,1,1); else Gardner's damped trend)
// Weekday factors s come from ratios to a centred 7-day moving average, medians per
// weekday, shrunk toward neutral by an empirical-Bayes factor. (alpha, beta, phi) are chosen
// on a grid by AICc of the in-sample one-step errors (clipped at 3 robust sigmas so one
// spike neither moves the level nor picks the parameters). The period value is linear in
// the future y's, so its variance under the model is exact (innovations form), plus the
// level's estimation error for short histories; quantiles and probabilities use Student's
// t with n_errors - 1 degrees of freedom.
#include "ops/forecast.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>

#include "core/time_zone.h"
#include "stats/distributions.h"
#include "stats/robust.h"

namespace ns {
namespace {

using stats::Median;
using stats::RobustSigma;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kHistoryDays = 56;  // 8 weeks: enough for weekday medians, recent enough
constexpr int kAnomalyDays = 28;  // trailing window of ScoreAnomaly
constexpr std::array<double, 8> kAlphaGrid = {0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8};
// Damped trend: slope smoothing and damping per day (a trend halves in ~7 or ~14 days, so a
// month-end projection never extrapolates a short run linearly).
constexpr std::array<double, 3> kBetaGrid = {0.02, 0.05, 0.1};
constexpr std::array<double, 3> kPhiGrid = {0.9, 0.95, 0.98};
constexpr const char* kWeekdayNames[7] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};

int Weekday(int32_t d) { return ((d + 4) % 7 + 7) % 7; }

// ---- The model.

struct Model {
  bool multiplicative = true;
  std::array<double, 7> season{};  // factor (multiplicative) or offset (additive)
  double shrink = 0;               // empirical-Bayes weight kept of the raw weekday effect
  bool seasonal = false;           // weekday effects estimated at all
  double alpha = 0.2;
  double beta = 0;                   // trend smoothing; 0 = no trend (simple exponential smoothing)
  double phi = 0;                    // trend damping per day
  double trend = 0;                  // slope after the last day (per day, deseasonalised units)
  double level = 0;                  // filtered level after the last finite day
  double sigma = 0;                  // one-step error sd of the deseasonalised series
  double df = 1;                     // degrees of freedom of sigma
  int n_finite = 0;                  // finite days used
  int32_t first_day = 0;             // first day of the fitted window
  int32_t last_day = 0;              // last day of the fitted window (last complete day)
  std::vector<double> level_before;  // level entering each window day (missing-day fill)
  bool nonnegative = true;           // every finite value >= 0
  bool unit_interval = true;         // every finite value in [0, 1]
  bool integers = true;              // every finite value an integer

  double Deseasonalise(double v, int wd) const {
    if (!multiplicative) return v - season[wd];
    return season[wd] > 1e-12 ? v / season[wd] : kNaN;  // a weekday that is always 0
  }
  // Coefficient of y in v for weekday wd, and the additive offset.
  double Coef(int wd) const { return multiplicative ? season[wd] : 1.0; }
  double Offset(int wd) const { return multiplicative ? 0.0 : season[wd]; }
  // Level entering `day` (clamped to the window): the point estimate of a missing day.
  double LevelAt(int32_t day) const {
    if (level_before.empty()) return level;
    if (day < first_day) return level_before.front();
    if (day > last_day) return level;
    return level_before[day - first_day];
  }
  // Expected deseasonalised value of `day`: the level then, or after the last day the
  // level plus the damped trend, sum_{i=1..h} phi^i * trend.
  double ExpectedY(int32_t day) const {
    if (day <= last_day || beta == 0) return LevelAt(day);
    double acc = 0, p = 1;
    for (int32_t i = 1; i <= day - last_day; ++i) acc += (p *= phi);
    double y = level + acc * trend;
    return multiplicative ? std::max(0.0, y) : y;
  }
};

// Weekday factors by classical decomposition: ratio (or difference) of each day to the
// centred 7-day moving average, median per weekday, normalised, then shrunk toward neutral
// by B = 1 - noise / (noise + signal) estimated from the data (James-Stein style), so a
// short or noisy history yields weak factors and an exact weekly pattern is kept intact.
void FitSeason(const std::vector<double>& v, int32_t first_day, Model* m) {
  const double neutral = m->multiplicative ? 1.0 : 0.0;
  m->season.fill(neutral);
  const int n = static_cast<int>(v.size());
  std::array<std::vector<double>, 7> ratios;
  for (int i = 3; i + 3 < n; ++i) {
    if (!std::isfinite(v[i])) continue;
    double sum = 0;
    int cnt = 0;
    for (int j = i - 3; j <= i + 3; ++j)
      if (std::isfinite(v[j])) sum += v[j], ++cnt;
    if (cnt < 6) continue;  // a hole would bias the average toward the other weekdays
    double ma = sum / cnt;
    if (m->multiplicative) {
      if (ma <= 0) continue;
      ratios[Weekday(first_day + i)].push_back(v[i] / ma);
    } else {
      ratios[Weekday(first_day + i)].push_back(v[i] - ma);
    }
  }
  size_t min_n = ratios[0].size();
  for (const auto& r : ratios) min_n = std::min(min_n, r.size());
  if (min_n < 2) return;  // fewer than two full weeks: no weekday pattern

  std::array<double, 7> raw{};
  for (int w = 0; w < 7; ++w) raw[w] = Median(ratios[w]);
  double mean = std::accumulate(raw.begin(), raw.end(), 0.0) / 7;
  if (m->multiplicative && mean <= 0) return;
  for (double& f : raw) f = m->multiplicative ? f / mean : f - mean;

  // Noise of each weekday median: (pi/2) sigma^2 / n_w, sigma pooled robustly.
  std::vector<double> resid;
  for (int w = 0; w < 7; ++w)
    for (double r : ratios[w])
      resid.push_back(r / (m->multiplicative ? mean : 1.0) - (m->multiplicative ? 0.0 : mean) - raw[w]);
  double s = RobustSigma(resid, 0);
  double noise = 0, signal = 0;
  for (int w = 0; w < 7; ++w) {
    noise += 1.5708 * s * s / ratios[w].size() / 7;
    signal += (raw[w] - neutral) * (raw[w] - neutral) / 7;
  }
  if (signal <= 0) return;
  m->shrink = std::max(0.0, 1.0 - noise / signal);
  m->seasonal = m->shrink > 0;
  for (int w = 0; w < 7; ++w) m->season[w] = neutral + m->shrink * (raw[w] - neutral);
}

struct SesRun {
  double sse = 0;
  double level = 0;
  double trend = 0;
  std::vector<double> errors;
  std::vector<double> level_before;
};

// Exponential smoothing over the deseasonalised window (simple when beta = 0, else with
// damped additive trend, Gardner & McKenzie); errors beyond `clip` update the state only by
// +-clip (Huber), so a spike neither drags the level nor picks the parameters.
SesRun RunSes(const std::vector<double>& y, double alpha, double beta, double phi, double clip, double b0) {
  SesRun r;
  r.level_before.resize(y.size());
  // Initial level: median of the first finite values (up to 7).
  std::vector<double> head;
  for (double x : y) {
    if (std::isfinite(x)) head.push_back(x);
    if (head.size() == 7) break;
  }
  double l = Median(head);
  double b = beta > 0 ? b0 : 0;
  bool started = false;
  for (size_t i = 0; i < y.size(); ++i) {
    if (started) {  // advance one day
      l += phi * b;
      b *= phi;
    }
    r.level_before[i] = l;
    if (!std::isfinite(y[i])) continue;
    if (!started) {  // the first value is part of the initial level: no error
      started = true;
      continue;
    }
    double e = y[i] - l;
    double ec = clip > 0 ? std::clamp(e, -clip, clip) : e;
    r.errors.push_back(e);
    r.sse += ec * ec;
    l += alpha * ec;
    b += beta * ec;
  }
  r.level = l;
  r.trend = b;
  return r;
}

// Fits the model on `v` (days first_day..first_day+v.size()-1, NaN = missing), which must
// hold at least one finite value.
Model Fit(const std::vector<double>& v_all, int32_t first_day_all) {
  Model m;
  int start = std::max(0, static_cast<int>(v_all.size()) - kHistoryDays);
  std::vector<double> v(v_all.begin() + start, v_all.end());
  m.first_day = first_day_all + start;
  m.last_day = m.first_day + static_cast<int32_t>(v.size()) - 1;

  double sum = 0;
  for (double x : v) {
    if (!std::isfinite(x)) continue;
    ++m.n_finite;
    sum += x;
    if (x < 0) m.nonnegative = false;
    if (x < 0 || x > 1) m.unit_interval = false;
    if (x != std::floor(x)) m.integers = false;
  }
  m.multiplicative = m.nonnegative && sum > 0;
  FitSeason(v, m.first_day, &m);

  std::vector<double> y(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    y[i] = std::isfinite(v[i]) ? m.Deseasonalise(v[i], Weekday(m.first_day + i)) : kNaN;

  // Clip scale: robust sigma of first differences / sqrt(2) (insensitive to level and spikes).
  std::vector<double> diffs;
  double prev = kNaN;
  for (double x : y) {
    if (!std::isfinite(x)) continue;
    if (std::isfinite(prev)) diffs.push_back(x - prev);
    prev = x;
  }
  double clip = diffs.size() >= 3 ? 3.0 * RobustSigma(diffs, Median(diffs)) / std::sqrt(2.0) : 0;

  // Initial slope: difference of the first two weeks' means, per day.
  double b0 = 0;
  {
    double s1 = 0, s2 = 0;
    int n1 = 0, n2 = 0;
    for (size_t i = 0; i < y.size() && i < 14; ++i) {
      if (!std::isfinite(y[i])) continue;
      (i < 7 ? s1 : s2) += y[i];
      ++(i < 7 ? n1 : n2);
    }
    if (n1 >= 4 && n2 >= 4) b0 = (s2 / n2 - s1 / n1) / 7;
  }
  // Model selection by AICc on the (clipped) one-step errors: the trend's two extra
  // parameters must pay for themselves, and a trend is tried only with 3+ weeks of data.
  auto aicc = [](const SesRun& r, int k) {
    double n = static_cast<double>(r.errors.size());
    if (n - k - 1 <= 0) return std::numeric_limits<double>::infinity();
    return n * std::log(std::max(r.sse / n, 1e-300)) + 2.0 * k + 2.0 * k * (k + 1) / (n - k - 1);
  };
  SesRun best;
  double best_score = 0;
  bool have = false;
  auto consider = [&](double a, double b, double p, int k) {
    SesRun r = RunSes(y, a, b, p, clip, b0);
    double score = aicc(r, k);
    if (!std::isfinite(score)) score = r.sse;  // too few errors for AICc: SES only anyway
    if (!have || score < best_score - 1e-9 * std::max(1.0, std::fabs(best_score))) {
      best = std::move(r);
      best_score = score;
      m.alpha = a;
      m.beta = b;
      m.phi = p;
      have = true;
    }
  };
  for (double a : kAlphaGrid) consider(a, 0, 0, 2);
  if (m.n_finite >= 21 && best.sse > 0) {
    for (double a : kAlphaGrid)
      for (double b : kBetaGrid)
        if (b <= a)
          for (double p : kPhiGrid) consider(a, b, p, 4);
  }
  m.level = best.level;
  m.trend = m.beta > 0 ? best.trend : 0;
  m.level_before = std::move(best.level_before);
  if (m.multiplicative) m.level = std::max(0.0, m.level);

  // Dispersion: RMS of the one-step errors winsorised at 5 robust sigmas (real spikes count,
  // a single absurd one does not dominate). Fewer than 3 errors: blend with a vague prior
  // of 50% of the level, so one day of history gives a wide interval, not a zero one.
  const auto& e = best.errors;
  double var = 0;
  if (!e.empty()) {
    double rs = RobustSigma(e, 0);
    double w = rs > 0 ? 5 * rs : std::numeric_limits<double>::infinity();
    for (double x : e) {
      double c = std::clamp(x, -w, w);
      var += c * c;
    }
    var /= e.size();
  }
  const int n_e = static_cast<int>(e.size());
  if (n_e < 3) {
    double prior = 0.5 * std::fabs(m.level);
    var = (n_e * var + (3 - n_e) * prior * prior) / 3;
  }
  m.sigma = std::sqrt(var);
  m.df = std::max(2, n_e - 1);
  return m;
}

// ---- Formatting.

// Display unit of a value: k/M/B suffix for large magnitudes.
struct Unit {
  double div = 1;
  const char* suffix = "";
};
Unit UnitFor(double x) {
  double a = std::fabs(x);
  if (a >= 1e9) return {1e9, "B"};
  if (a >= 1e6) return {1e6, "M"};
  if (a >= 1e4) return {1e3, "k"};
  return {};
}

// Three significant digits in the unit of `scale_of` ("138k", "1.23M", "12.5", "9.2k"), or
// a percentage for rates.
std::string FormatValue(double x, bool percent, double scale_of) {
  char buf[64];
  if (!std::isfinite(x)) return "n/a";
  if (percent) {
    std::snprintf(buf, sizeof buf, "%.1f%%", x * 100);
    return buf;
  }
  Unit u = UnitFor(scale_of);
  double y = x / u.div, ay = std::fabs(y);
  int decimals = ay >= 100 ? 0 : ay >= 10 ? 1 : ay >= 1 ? 2 : 3;
  if (u.div == 1 && ay >= 1000) decimals = 0;
  if (u.div == 1 && std::fabs(scale_of) >= 100) decimals = 0;
  std::snprintf(buf, sizeof buf, "%.*f%s", decimals, y, u.suffix);
  return buf;
}
std::string FormatValue(double x, bool percent) { return FormatValue(x, percent, x); }

}  // namespace

StatusOr<Forecast> ForecastPeriodEnd(const ForecastInput& in) {
  const DailySeries& s = in.observed;
  if (s.values.empty()) return InvalidArgument("forecast: the observed series is empty", "observed");
  if (in.period_last_day < in.period_first_day)
    return InvalidArgument("forecast: period_last_day " + FormatDate(in.period_last_day) +
                               " is before period_first_day " + FormatDate(in.period_first_day),
                           "period_last_day");
  if (!(in.interval > 0 && in.interval < 1))
    return InvalidArgument("forecast: interval must be in (0, 1), got " + std::to_string(in.interval), "interval");
  if (!s.weights.empty() && s.weights.size() != s.values.size())
    return InvalidArgument("forecast: weights has " + std::to_string(s.weights.size()) + " entries for " +
                               std::to_string(s.values.size()) + " values",
                           "observed.weights");
  if (in.target && !std::isfinite(*in.target))
    return InvalidArgument("forecast: target is not a finite number", "target");

  const bool mean_agg = in.aggregate == PeriodAggregate::kMean;
  const bool weighted = mean_agg && !s.weights.empty();
  // Ignore anything after the period: the forecast is "as of" min(last day, period end).
  const int32_t last = std::min(s.last_day(), in.period_last_day);
  const int32_t P0 = in.period_first_day, P1 = in.period_last_day;
  auto value_at = [&](int32_t d) { return d >= s.first_day && d <= last ? s.values[d - s.first_day] : kNaN; };
  auto weight_at = [&](int32_t d) {
    if (!weighted) return 1.0;
    double w = d >= s.first_day && d <= last ? s.weights[d - s.first_day] : kNaN;
    return w;
  };

  Forecast f;
  // Days of the period with a value (and, for weighted rates, a finite positive weight).
  std::vector<int32_t> missing;
  double obs_sum = 0, obs_w = 0;
  for (int32_t d = P0; d <= P1; ++d) {
    double v = value_at(d), w = weight_at(d);
    if (std::isfinite(v) && std::isfinite(w) && w >= 0) {
      obs_sum += v * w;
      obs_w += w;
      ++f.days_observed;
    } else {
      missing.push_back(d);
    }
  }
  f.days_remaining = static_cast<int>(missing.size());
  f.observed_so_far = mean_agg ? (obs_w > 0 ? obs_sum / obs_w : kNaN) : obs_sum;

  // The history the model sees: the series up to `last` (the period's own days included).
  std::vector<double> hist(s.values.begin(), s.values.begin() + (last - s.first_day + 1));
  int n_finite = 0;
  for (double x : hist) n_finite += std::isfinite(x) ? 1 : 0;
  const bool percent = mean_agg && [&] {
    for (double x : hist)
      if (std::isfinite(x) && (x < 0 || x > 1)) return false;
    return true;
  }();

  double mean = 0, var = 0;
  bool nonneg = true, unit = false;
  double floor_value = -std::numeric_limits<double>::infinity();
  double ceil_value = std::numeric_limits<double>::infinity();

  if (missing.empty()) {
    mean = f.observed_so_far;
    f.method = "period complete: actual value";
  } else if (n_finite == 0) {
    return InvalidArgument("forecast: the observed series has no finite value up to " + FormatDate(last),
                           "observed.values");
  } else {
    Model m = Fit(hist, s.first_day);
    nonneg = m.nonnegative;
    unit = m.unit_interval;
    // Future weights of a weighted rate: the weights' own weekday-seasonal level.
    std::vector<double> w_missing(missing.size(), 1.0);
    if (weighted) {
      std::vector<double> wh(s.weights.begin(), s.weights.begin() + hist.size());
      for (size_t i = 0; i < wh.size(); ++i)
        if (!std::isfinite(hist[i])) wh[i] = kNaN;
      bool any = std::any_of(wh.begin(), wh.end(), [](double x) { return std::isfinite(x); });
      if (any) {
        Model mw = Fit(wh, s.first_day);
        for (size_t i = 0; i < missing.size(); ++i) {
          int wd = Weekday(missing[i]);
          w_missing[i] = std::max(0.0, mw.ExpectedY(missing[i]) * mw.Coef(wd) + mw.Offset(wd));
        }
      }
    }
    double total_w = mean_agg ? obs_w + std::accumulate(w_missing.begin(), w_missing.end(), 0.0) : 1.0;
    if (mean_agg && !(total_w > 0)) {  // no weight anywhere: fall back to equal weights
      std::fill(w_missing.begin(), w_missing.end(), 1.0);
      total_w = obs_w + missing.size();
    }
    // Period value = A + sum over missing days of c_d * v_d,  c_d = w_d / W (kMean) or 1.
    const double A = mean_agg ? obs_sum / total_w : obs_sum;
    mean = A;
    floor_value = A;  // if values are >= 0, the period value is at least what is in
    ceil_value = A;   // if values are in [0, 1] (rates), at most A + sum of c
    // Future days: steps 1..H after `last`; a[j] = coefficient of y at step j.
    const int H = std::max(0, P1 - last);
    std::vector<double> a(H, 0.0);
    for (size_t i = 0; i < missing.size(); ++i) {
      int32_t d = missing[i];
      int wd = Weekday(d);
      double c = mean_agg ? w_missing[i] / total_w : 1.0;
      ceil_value += c;
      double coef = c * m.Coef(wd);
      mean += coef * m.ExpectedY(d) + c * m.Offset(wd);
      if (d > last) {
        a[d - last - 1] = coef;
      } else {  // a missing day in the past: filled from the level then, independent error
        var += coef * coef * m.sigma * m.sigma;
      }
    }
    // Future: y_{L+j} = E[y_{L+j}] + e_j + sum_{k<j} e_k g_{j-k},
    //   g_h = alpha + beta * sum_{i=1..h} phi^i  (alpha alone without trend),
    // so S = sum_k e_k (a_k + sum_{j>k} a_j g_{j-k}), e_k iid (0, sigma^2). O(H^2), H <= period.
    std::vector<double> g(H + 1, m.alpha);
    for (int h = 1; h <= H && m.beta > 0; ++h) g[h] = m.alpha + m.beta * m.phi * (1 - std::pow(m.phi, h)) / (1 - m.phi);
    double tail = 0, sum_a = 0;
    for (int k = 0; k < H; ++k) {
      double coef_k = a[k];
      for (int j = k + 1; j < H; ++j) coef_k += a[j] * g[j - k];
      var += coef_k * coef_k * m.sigma * m.sigma;
      tail += a[k];
    }
    sum_a = tail;
    // Estimation error of the current level. The innovations formula above already holds
    // the steady-state share alpha / (2 - alpha) sigma^2; a short history (the level is a
    // median of few days) is less certain than that: at least sigma^2 / n.
    double level_var = 1.0 / std::max(1, m.n_finite) - m.alpha / (2 - m.alpha);
    if (level_var > 0) var += sum_a * sum_a * m.sigma * m.sigma * level_var;

    char buf[160];
    int weeks = (m.last_day - m.first_day + 1) / 7;
    std::snprintf(
        buf, sizeof buf, "%s %s (alpha %.2f%s), %d days history%s%s",
        m.seasonal ? (m.multiplicative ? "weekday-seasonal (multiplicative)" : "weekday-seasonal (additive)")
                   : "non-seasonal",
        m.beta > 0 ? "level with damped trend" : "level", m.alpha,
        m.beta > 0 ? (", beta " + FormatValue(m.beta, false) + ", phi " + FormatValue(m.phi, false)).c_str() : "",
        m.last_day - m.first_day + 1, weeks >= 1 ? (" (" + std::to_string(weeks) + " weeks)").c_str() : "",
        m.seasonal && m.shrink < 0.999
            ? (", weekday effects shrunk to " + std::to_string(static_cast<int>(std::lround(m.shrink * 100))) + "%")
                  .c_str()
            : "");
    f.method = buf;
    f.stddev = std::sqrt(var);
    // Student t with the model's degrees of freedom.
    double q = stats::StudentTQuantile((1 + in.interval) / 2, m.df);
    f.projected = mean;
    f.lower = mean - q * f.stddev;
    f.upper = mean + q * f.stddev;
    if (nonneg) f.lower = std::max(f.lower, floor_value);
    if (mean_agg && unit) f.upper = std::min(f.upper, ceil_value);
    if (in.target) {
      double t = *in.target;
      double p_above;  // P(value >= t)
      if (f.stddev > 0) {
        p_above = 1 - stats::StudentTCdf((t - mean) / f.stddev, m.df);
      } else {
        p_above = mean >= t - 1e-9 * std::max(1.0, std::fabs(t)) ? 1 : 0;
      }
      if (nonneg && t <= floor_value) p_above = 1;
      if (mean_agg && unit && t > ceil_value) p_above = 0;
      f.prob_reach_target = in.higher_is_better ? p_above : 1 - p_above;
      // At exactly the target, "meets" counts for both directions.
      if (!in.higher_is_better && f.stddev == 0 && std::fabs(mean - t) <= 1e-9 * std::max(1.0, std::fabs(t)))
        f.prob_reach_target = 1;
    }
  }

  if (missing.empty()) {
    f.projected = f.lower = f.upper = mean;
    f.stddev = 0;
    if (in.target) {
      double t = *in.target;
      double tol = 1e-9 * std::max(1.0, std::fabs(t));
      f.prob_reach_target = in.higher_is_better ? (mean >= t - tol ? 1 : 0) : (mean <= t + tol ? 1 : 0);
    }
  }
  if (!in.target) f.prob_reach_target = kNaN;

  // Summary line.
  std::string by = FormatDate(P1);
  std::string line;
  if (missing.empty()) {
    line = "final " + FormatValue(mean, percent) + " for the period ending " + by;
  } else {
    double half = (f.upper - f.lower) / 2;
    line = "at this pace " + FormatValue(f.projected, percent) + " ± " + FormatValue(half, percent, f.projected) +
           " by " + by;
  }
  if (in.target) {
    int pct = static_cast<int>(std::lround(f.prob_reach_target * 100));
    if (missing.empty()) {
      line += f.prob_reach_target >= 0.5 ? "; target " : "; missed target ";
      line += FormatValue(*in.target, percent);
    } else {
      std::string p = (pct == 0 && f.prob_reach_target > 0)     ? "<1"
                      : (pct == 100 && f.prob_reach_target < 1) ? ">99"
                                                                : std::to_string(pct);
      line +=
          "; " + p + "% chance of " + (in.higher_is_better ? "" : "staying within ") + FormatValue(*in.target, percent);
    }
  }
  f.summary = line;
  return f;
}

AnomalyScore ScoreAnomaly(const DailySeries& trailing, int32_t day, double value, double threshold) {
  AnomalyScore r;
  std::vector<double> vals;
  std::vector<int> wds;
  bool nonneg = true, integers = true;
  for (int32_t d = day - kAnomalyDays; d < day; ++d) {
    if (d < trailing.first_day || d > trailing.last_day()) continue;
    double v = trailing.values[d - trailing.first_day];
    if (!std::isfinite(v)) continue;
    vals.push_back(v);
    wds.push_back(Weekday(d));
    if (v < 0) nonneg = false;
    if (v != std::floor(v)) integers = false;
  }
  const int n = static_cast<int>(vals.size());
  if (n < 7) {
    r.expected = n > 0 ? Median(vals) : kNaN;
    r.explanation = "not enough history: " + std::to_string(n) + " of the " + std::to_string(kAnomalyDays) +
                    " previous days have a value (7 needed)";
    return r;
  }
  const double med = Median(vals);
  const bool mult = nonneg && med > 0;

  // Non-seasonal: level = median, sigma from the MAD (corrected for the fitted centre).
  double sigma0 = RobustSigma(vals, med) * std::sqrt(static_cast<double>(n) / (n - 1));
  double expected = med;
  double scale = sigma0;
  bool seasonal = false;

  // Weekday seasonal: median per weekday; residuals relative (multiplicative) or absolute.
  std::array<std::vector<double>, 7> by_wd;
  for (int i = 0; i < n; ++i) by_wd[wds[i]].push_back(vals[i]);
  bool all_wd = std::all_of(by_wd.begin(), by_wd.end(), [](const auto& v) { return v.size() >= 2; });
  if (all_wd) {
    std::array<double, 7> wd_med{};
    for (int w = 0; w < 7; ++w) wd_med[w] = Median(by_wd[w]);
    std::vector<double> resid;
    bool ok = true;
    for (int i = 0; i < n; ++i) {
      double e = wd_med[wds[i]];
      if (mult) {
        if (e <= 0) {
          ok = false;
          break;
        }
        resid.push_back(vals[i] / e - 1);
      } else {
        resid.push_back(vals[i] - e);
      }
    }
    if (ok && n > 7) {
      double corr = std::sqrt(static_cast<double>(n) / (n - 7));
      double s = RobustSigma(resid, 0) * corr;  // relative (mult) or absolute (add)
      int wd = Weekday(day);
      double s_abs_typical = mult ? s * med : s;
      // Keep the weekday pattern only if it explains the history: residual sigma at least
      // 10% below the non-seasonal one.
      if (s_abs_typical < 0.9 * sigma0) {
        seasonal = true;
        expected = wd_med[wd];
        scale = mult ? s * expected : s;
      }
    }
  }
  // Floors: Poisson noise for integer counts; a relative epsilon otherwise, so a constant
  // history scores any change as large, not infinite.
  if (nonneg && integers) scale = std::max(scale, std::sqrt(std::max(expected, 1.0)));
  scale = std::max(scale, 1e-6 * std::max(std::fabs(expected), 1e-9));

  r.expected = expected;
  r.score = (value - expected) / scale;
  r.anomalous = std::isfinite(r.score) && std::fabs(r.score) >= threshold;
  char buf[256];
  std::snprintf(
      buf, sizeof buf, "%s vs %s expected %s (robust z %+.1f, threshold %.1f)", FormatValue(value, false).c_str(),
      FormatValue(expected, false).c_str(),
      seasonal
          ? (std::string("for a ") + kWeekdayNames[Weekday(day)] + " from the last 28 days' weekday medians").c_str()
          : "from the median of the last 28 days",
      r.score, threshold);
  r.explanation = buf;
  return r;
}

BacktestResult Backtest(const DailySeries& series, int period_days, PeriodAggregate agg, double interval,
                        const std::vector<double>& cut_fractions) {
  BacktestResult r;
  if (period_days <= 0 || series.values.empty()) return r;
  const bool weighted =
      agg == PeriodAggregate::kMean && !series.weights.empty() && series.weights.size() == series.values.size();
  const int n = static_cast<int>(series.values.size());
  double sum_ape = 0, sum_bias = 0, sum_width = 0;
  int n_ape = 0, inside = 0;
  for (int start = 0; start + period_days <= n; start += period_days) {
    // Actual period value; periods with a missing day have no actual.
    double num = 0, den = 0;
    bool complete = true;
    for (int i = start; i < start + period_days; ++i) {
      double v = series.values[i], w = weighted ? series.weights[i] : 1.0;
      if (!std::isfinite(v) || !std::isfinite(w)) complete = false;
      num += v * w;
      den += w;
    }
    if (!complete) continue;
    double actual = agg == PeriodAggregate::kSum ? num : (den > 0 ? num / den : kNaN);
    if (!std::isfinite(actual)) continue;
    for (double frac : cut_fractions) {
      int cut = start + static_cast<int>(std::lround(frac * period_days));  // days known
      if (cut <= 0 || cut >= start + period_days) continue;
      ForecastInput in;
      in.observed.first_day = series.first_day;
      in.observed.values.assign(series.values.begin(), series.values.begin() + cut);
      if (weighted) in.observed.weights.assign(series.weights.begin(), series.weights.begin() + cut);
      in.period_first_day = series.first_day + start;
      in.period_last_day = series.first_day + start + period_days - 1;
      in.aggregate = agg;
      in.interval = interval;
      auto fc = ForecastPeriodEnd(in);
      if (!fc.ok()) continue;
      ++r.forecasts;
      if (fc->lower <= actual && actual <= fc->upper) ++inside;
      if (actual != 0) {
        double err = fc->projected - actual;
        sum_ape += std::fabs(err) / std::fabs(actual);
        sum_bias += err / std::fabs(actual);
        sum_width += (fc->upper - fc->lower) / std::fabs(actual);
        ++n_ape;
      }
    }
  }
  if (r.forecasts > 0) r.coverage = static_cast<double>(inside) / r.forecasts;
  if (n_ape > 0) {
    r.mape = sum_ape / n_ape;
    r.bias = sum_bias / n_ape;
    r.mean_width = sum_width / n_ape;
  }
  return r;
}

}  // namespace ns
