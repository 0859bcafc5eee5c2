// Trends: from the filled cells to the answer (docs/queries.md "Trends"). Everything here
// reads the cells of the one scan (trends.cc), never the data again:
//  - the value of a cell per math;
//  - rolling active persons (weekly/monthly active) from per-day cells, by a sliding window
//    that adds the day entering and removes the day leaving (O(rows), not O(days x window));
//  - cumulative values and the one number of "display":"number", both as the math over the
//    union of cells (exact: running distinct persons, running percentiles through order
//    statistics), never as sums of per-interval values;
//  - the moving average of "smoothing" over the intervals read before the range;
//  - the breakdown ranking and limit, the formula's series, the comparison series.
#include <algorithm>
#include <cmath>
#include <set>

#include "query/trends_cells.h"

namespace ns {

using nlohmann::json;

namespace {

// Linear interpolation between closest ranks (as numpy's default and ClickHouse quantileExact*
// variants), over `size` sorted values given by at(i).
template <typename At>
double InterpolatedPercentile(size_t size, double p, At&& at) {
  const double pos = p * static_cast<double>(size - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, size - 1);
  const double a = at(lo), b = at(hi);
  return a + (b - a) * (pos - static_cast<double>(lo));
}

double Percentile(std::vector<double>& v, double p) {
  std::sort(v.begin(), v.end());
  return InterpolatedPercentile(v.size(), p, [&](size_t i) { return v[i]; });
}

bool IsPerPerson(Math m) { return m == Math::kAvgPerPerson || m == Math::kMedianPerPerson || m == Math::kP90PerPerson; }
bool IsDistinct(Math m) { return m == Math::kDau || RollingDays(m) > 0; }
double PercentileOf(Math m) { return m == Math::kP50 || m == Math::kMedianPerPerson ? 0.5 : 0.9; }

// Each person's number of rows in the cell, ascending (sorts the cell's row list in place).
std::vector<double> PersonCounts(TrendsCell& c) {
  std::sort(c.row_persons.begin(), c.row_persons.end());
  std::vector<double> counts;
  for (size_t i = 0; i < c.row_persons.size();) {
    size_t j = i;
    while (j < c.row_persons.size() && c.row_persons[j] == c.row_persons[i]) j++;
    counts.push_back(static_cast<double>(j - i));
    i = j;
  }
  std::sort(counts.begin(), counts.end());
  return counts;
}

// The value of one cell (one interval, or one day of a rolling math).
Measure CellValue(Math m, TrendsCell& c) {
  switch (m) {
    case Math::kTotal: return Measure::Count(c.count);
    case Math::kDau:
    case Math::kWeeklyActive:
    case Math::kMonthlyActive: return Measure::Count(TrendsDistinct::Count(c));
    case Math::kSum: return Measure::Real(c.sum);
    case Math::kAvg: return c.count ? Measure::Real(c.sum / static_cast<double>(c.count)) : Measure::None();
    case Math::kMin: return c.count ? Measure::Real(c.min) : Measure::None();
    case Math::kMax: return c.count ? Measure::Real(c.max) : Measure::None();
    case Math::kP50:
    case Math::kP90: return c.values.empty() ? Measure::None() : Measure::Real(Percentile(c.values, PercentileOf(m)));
    case Math::kAvgPerPerson:
    case Math::kMedianPerPerson:
    case Math::kP90PerPerson: {
      if (c.row_persons.empty()) return Measure::None();
      std::vector<double> counts = PersonCounts(c);
      if (m == Math::kAvgPerPerson)
        return Measure::Real(static_cast<double>(c.row_persons.size()) / static_cast<double>(counts.size()));
      return Measure::Real(InterpolatedPercentile(counts.size(), PercentileOf(m), [&](size_t i) { return counts[i]; }));
    }
  }
  return Measure::None();
}

// A multiset of ranks 0..n-1 with the k-th smallest in O(log n) (a Fenwick tree): running
// percentiles without re-sorting.
class OrderStatistics {
 public:
  void Reset(size_t n) {
    tree_.assign(n + 1, 0);
    size_ = 0;
    top_ = 1;
    while (top_ * 2 <= n) top_ *= 2;
  }
  void Add(size_t rank, int64_t d) {
    size_ = static_cast<uint64_t>(static_cast<int64_t>(size_) + d);
    for (size_t i = rank + 1; i < tree_.size(); i += i & (~i + 1)) tree_[i] += d;
  }
  uint64_t size() const { return size_; }
  // The rank of the k-th smallest element (k from 0; REQUIRES: k < size()).
  size_t Kth(uint64_t k) const {
    size_t pos = 0;
    int64_t rest = static_cast<int64_t>(k);
    for (size_t step = top_; step; step >>= 1)
      if (pos + step < tree_.size() && tree_[pos + step] <= rest) {
        pos += step;
        rest -= tree_[pos];
      }
    return pos;
  }

 private:
  std::vector<int64_t> tree_;
  uint64_t size_ = 0;
  size_t top_ = 1;
};

// A math over a growing union of cells: Start, then Add cells (in interval order for a
// cumulative series), Value at any point. Exact for every math: distinct persons are
// counted once over the union, percentiles are over all values, per-person counts are
// summed across cells before their distribution is taken. Scratch memory (a bit per person,
// a count per person) is kept across Starts and cleared by what was touched.
class RunningAggregate {
 public:
  explicit RunningAggregate(size_t persons) : persons_(persons) {}

  void Start(Math m, const std::vector<TrendsCell*>& cells) {
    math_ = m;
    count_ = distinct_ = 0;
    sum_ = 0;
    min_ = INFINITY;
    max_ = -INFINITY;
    for (size_t w : touched_words_) seen_[w] = 0;
    touched_words_.clear();
    for (uint32_t p : touched_persons_) person_rows_[p] = 0;
    touched_persons_.clear();
    if (IsDistinct(m) && seen_.empty()) seen_.assign(persons_ / 64 + 2, 0);
    if (IsPerPerson(m) && person_rows_.empty()) person_rows_.assign(persons_ + 1, 0);
    if (m == Math::kP50 || m == Math::kP90) {
      universe_.clear();
      for (TrendsCell* c : cells) universe_.insert(universe_.end(), c->values.begin(), c->values.end());
      std::sort(universe_.begin(), universe_.end());
      universe_.erase(std::unique(universe_.begin(), universe_.end()), universe_.end());
      stats_.Reset(universe_.size());
    } else if (m == Math::kMedianPerPerson || m == Math::kP90PerPerson) {
      uint64_t rows = 0;
      for (TrendsCell* c : cells) rows += c->row_persons.size();
      stats_.Reset(static_cast<size_t>(rows) + 1);  // a person's count is 1..rows
    }
  }

  void Add(TrendsCell& c) {
    count_ += c.count;
    sum_ += c.sum;
    min_ = std::min(min_, c.min);
    max_ = std::max(max_, c.max);
    if (IsDistinct(math_)) {
      TrendsDistinct::ForEach(c, [&](uint32_t p) {
        uint64_t& w = seen_[p >> 6];
        const uint64_t bit = 1ULL << (p & 63);
        if (w & bit) return;
        if (!w) touched_words_.push_back(p >> 6);
        w |= bit;
        distinct_++;
      });
    } else if (math_ == Math::kP50 || math_ == Math::kP90) {
      for (double v : c.values)
        stats_.Add(static_cast<size_t>(std::lower_bound(universe_.begin(), universe_.end(), v) - universe_.begin()), 1);
    } else if (IsPerPerson(math_)) {
      const bool ranks = math_ != Math::kAvgPerPerson;
      for (uint32_t p : c.row_persons) {
        uint32_t& n = person_rows_[p];
        if (n == 0) {
          distinct_++;
          touched_persons_.push_back(p);
        } else if (ranks) {
          stats_.Add(n, -1);
        }
        n++;
        if (ranks) stats_.Add(n, 1);
      }
    }
  }

  Measure Value() const {
    switch (math_) {
      case Math::kTotal: return Measure::Count(count_);
      case Math::kDau:
      case Math::kWeeklyActive:
      case Math::kMonthlyActive: return Measure::Count(distinct_);
      case Math::kSum: return Measure::Real(sum_);
      case Math::kAvg: return count_ ? Measure::Real(sum_ / static_cast<double>(count_)) : Measure::None();
      case Math::kMin: return count_ ? Measure::Real(min_) : Measure::None();
      case Math::kMax: return count_ ? Measure::Real(max_) : Measure::None();
      case Math::kP50:
      case Math::kP90:
        if (!stats_.size()) return Measure::None();
        return Measure::Real(InterpolatedPercentile(stats_.size(), PercentileOf(math_),
                                                    [&](size_t i) { return universe_[stats_.Kth(i)]; }));
      case Math::kAvgPerPerson:
        return distinct_ ? Measure::Real(static_cast<double>(count_) / static_cast<double>(distinct_))
                         : Measure::None();
      case Math::kMedianPerPerson:
      case Math::kP90PerPerson:
        if (!stats_.size()) return Measure::None();
        return Measure::Real(InterpolatedPercentile(stats_.size(), PercentileOf(math_),
                                                    [&](size_t i) { return static_cast<double>(stats_.Kth(i)); }));
    }
    return Measure::None();
  }

 private:
  size_t persons_;
  Math math_ = Math::kTotal;
  uint64_t count_ = 0, distinct_ = 0;
  double sum_ = 0, min_ = INFINITY, max_ = -INFINITY;
  std::vector<uint64_t> seen_;  // distinct maths: bit per person
  std::vector<size_t> touched_words_;
  std::vector<uint32_t> person_rows_;  // per-person maths: rows per person
  std::vector<uint32_t> touched_persons_;
  std::vector<double> universe_;  // p50/p90: the distinct values, ascending (ranks index it)
  OrderStatistics stats_;
};

// What one (lane, breakdown group) shows: a value per shown interval, and the number over
// the whole range under "display":"number".
struct Shown {
  std::vector<Measure> values;
  std::optional<Measure> aggregated;
};

class Finisher {
 public:
  Finisher(const TrendsQuery& q, size_t persons) : q_(q), running_(persons), days_active_(persons + 1, 0) {}

  // `gc` null: the group has no rows in this lane.
  Shown Finish(const TrendsLane& lane, TrendsGroupCells* gc) {
    const Math m = q_.series[lane.series].math;
    const size_t G = lane.grid.size(), lead = lane.lead;
    auto cell = [&](size_t k) { return gc ? gc->Find(k) : nullptr; };
    const bool number = q_.display == TrendsDisplay::kNumber;
    Shown out;
    if (q_.cumulative) {  // never with a rolling math nor with smoothing (lead == 0)
      running_.Start(m, MainCells(lane, gc));
      for (size_t k = lead; k < G; k++) {
        if (TrendsCell* c = cell(k)) running_.Add(*c);
        out.values.push_back(running_.Value());
      }
      if (number) out.aggregated = out.values.back();
      return out;
    }
    std::vector<Measure> base = Base(lane, gc);
    if (q_.smoothing > 1) {
      for (size_t k = lead; k < G; k++) {
        double sum = 0;
        size_t with_value = 0;
        for (size_t j = k - lead; j <= k; j++)
          if (base[j].has_value()) {
            sum += base[j].value();
            with_value++;
          }
        out.values.push_back(with_value ? Measure::Real(sum / static_cast<double>(with_value)) : Measure::None());
      }
    } else {
      out.values.assign(base.begin() + static_cast<std::ptrdiff_t>(lead), base.end());
    }
    if (number) {
      if (RollingDays(m)) {
        out.aggregated = base.back();  // the window ending on the last day of the range
      } else {
        std::vector<TrendsCell*> cells = MainCells(lane, gc);
        running_.Start(m, cells);
        for (TrendsCell* c : cells) running_.Add(*c);
        out.aggregated = running_.Value();
      }
    }
    return out;
  }

  // The key that orders breakdown values (largest first): the number over the range under
  // "display":"number", else the sum of the interval values (as before the extensions).
  double Rank(const TrendsLane& lane, TrendsGroupCells& gc) {
    const Math m = q_.series[lane.series].math;
    if (q_.display == TrendsDisplay::kNumber) return Finish(lane, &gc).aggregated->value();
    double total = 0;
    if (RollingDays(m)) {
      std::vector<Measure> base = Base(lane, &gc);
      for (size_t k = lane.lead; k < base.size(); k++) total += base[k].value();
      return total;
    }
    auto add = [&](size_t k, TrendsCell& c) {
      if (k >= lane.lead) total += CellValue(m, c).value();
    };
    if (gc.is_dense) {
      for (size_t k = 0; k < gc.dense.size(); k++) add(k, gc.dense[k]);
    } else {
      for (auto& [k, c] : gc.sparse) add(k, c);
    }
    return total;
  }

 private:
  // The value of every grid bucket (lead buckets included).
  std::vector<Measure> Base(const TrendsLane& lane, TrendsGroupCells* gc) {
    const Math m = q_.series[lane.series].math;
    if (const int window = RollingDays(m)) return Rolling(lane, window, gc);
    std::vector<Measure> base;
    base.reserve(lane.grid.size());
    for (size_t k = 0; k < lane.grid.size(); k++) {
      TrendsCell* c = gc ? gc->Find(k) : nullptr;
      TrendsCell empty;
      base.push_back(CellValue(m, c ? *c : empty));
    }
    return base;
  }

  std::vector<TrendsCell*> MainCells(const TrendsLane& lane, TrendsGroupCells* gc) {
    std::vector<TrendsCell*> cells;
    if (gc)
      for (size_t k = lane.lead; k < lane.grid.size(); k++)
        if (TrendsCell* c = gc->Find(k)) cells.push_back(c);
    return cells;
  }

  // Distinct persons over the `window` local days ending on each grid bucket's last day,
  // from per-day cells: the window slides over the days, each day's persons are added when it
  // enters and removed when it leaves (days_active_ counts a person's days in the window).
  std::vector<Measure> Rolling(const TrendsLane& lane, int window, TrendsGroupCells* gc) {
    std::vector<Measure> out;
    uint64_t active = 0;
    auto each = [&](int32_t day, auto&& fn) {
      TrendsCell* c = gc ? gc->Find(static_cast<size_t>(day - lane.first_day)) : nullptr;
      if (c) TrendsDistinct::ForEach(*c, fn);
    };
    auto enter = [&](int32_t day) {
      each(day, [&](uint32_t p) {
        if (days_active_[p]++ == 0) active++;
      });
    };
    auto leave = [&](int32_t day) {
      each(day, [&](uint32_t p) {
        if (--days_active_[p] == 0) active--;
      });
    };
    int32_t lo = lane.first_day, hi = lane.first_day - 1;  // days in the window: [lo, hi]
    for (size_t k = 0; k < lane.grid.size(); k++) {
      const int32_t last = lane.end_day[k], first = last - window + 1;
      while (lo <= hi && lo < first) leave(lo++);
      if (lo > hi) {  // empty: restart at the window's first day (the days before it are not in it)
        lo = first;
        hi = std::max(hi, first - 1);
      }
      while (hi < last) enter(++hi);
      out.push_back(Measure::Count(active));
    }
    while (lo <= hi) leave(lo++);  // days_active_ is all zero again for the next group
    return out;
  }

  const TrendsQuery& q_;
  RunningAggregate running_;
  std::vector<uint8_t> days_active_;  // a window has at most 28 days
};

TrendsGroupCells* FindGroup(TrendsLaneCells& cells, uint32_t g) {
  auto it = cells.find(g);
  return it == cells.end() ? nullptr : &it->second;
}

// Values (and labels) fitted to the current range's n intervals: a comparison range can be
// an hour shorter or longer across a DST change.
template <typename T>
std::vector<T> Fit(std::vector<T> v, size_t n, T fill) {
  v.resize(n, fill);
  return v;
}

}  // namespace

StatusOr<TrendsResult> FinishTrends(const TrendsQuery& q, const std::vector<TrendsLane>& lanes,
                                    std::vector<TrendsLaneCells>& cells, const BreakdownResolver& breakdown,
                                    size_t persons, const TimeZone& tz) {
  const size_t S = q.series.size();
  const bool comparing = lanes.size() > S;
  const size_t n = lanes[0].shown();
  TrendsResult out;
  out.timezone = tz.name();
  out.interval = q.interval;
  out.date_from = q.from_day;
  out.date_to = q.to_day;
  for (size_t k = lanes[0].lead; k < lanes[0].grid.size(); k++) out.dates.push_back(lanes[0].grid[k].label);
  out.compare = q.compare;
  if (comparing) {
    out.compare_from = lanes[S].from_day;
    out.compare_to = lanes[S].to_day;
  }
  out.display = q.display;
  if (q.formula) out.formula = q.formula->text();
  out.smoothing = q.smoothing;
  out.cumulative = q.cumulative;
  const std::string suffix = q.compare == TrendsCompare::kPreviousYear ? " (previous year)" : " (previous period)";
  const bool number = q.display == TrendsDisplay::kNumber;
  Finisher fin(q, persons);

  auto row = [&](const std::string& label, size_t si, bool previous, uint32_t g, Shown shown) {
    TrendsSeriesResult sr;
    sr.label = previous ? label + suffix : label;
    if (si < S) {
      sr.event = q.series[si].event;
      sr.math = q.series[si].math;
    } else {
      sr.formula = q.formula->text();
    }
    sr.breakdown_value = breakdown.active() ? breakdown.Value(g) : json();
    sr.values = Fit(std::move(shown.values), n, Measure::None());
    sr.aggregated_value = shown.aggregated;
    sr.previous = previous;
    if (previous) {
      const TrendsLane& l = lanes[S];
      std::vector<std::string> labels;
      for (size_t k = l.lead; k < l.grid.size(); k++) labels.push_back(l.grid[k].label);
      sr.dates = Fit(std::move(labels), n, std::string());
    }
    out.series.push_back(std::move(sr));
  };

  // The breakdown values each series shows: the largest breakdown_limit by Rank (without a
  // breakdown, the one group 0, shown even when empty).
  std::vector<std::vector<uint32_t>> kept(S);
  for (size_t si = 0; si < S; si++) {
    if (!breakdown.active()) {
      kept[si] = {0};
      continue;
    }
    std::vector<std::pair<uint32_t, double>> ranked;
    for (auto& [g, gc] : cells[si]) ranked.emplace_back(g, fin.Rank(lanes[si], gc));
    std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    if (ranked.size() > q.breakdown_limit) ranked.resize(q.breakdown_limit);
    for (auto& [g, r] : ranked) kept[si].push_back(g);
  }

  // The formula per breakdown value (as PostHog): over every value any of its series has,
  // each series' values for it (an empty series where it has none), ranked like a series.
  std::vector<uint32_t> formula_groups;
  auto formula_shown = [&](size_t lane0, uint32_t g) {
    std::vector<Shown> inputs(S);
    for (size_t si : q.formula->letters()) inputs[si] = fin.Finish(lanes[lane0 + si], FindGroup(cells[lane0 + si], g));
    Shown f;
    std::vector<std::optional<double>> vars(S);
    auto eval = [&](auto&& value_of) {
      for (size_t si : q.formula->letters()) vars[si] = value_of(inputs[si]);
      auto v = q.formula->Evaluate(vars);
      return v ? Measure::Real(*v) : Measure::None();
    };
    const size_t len = lanes[lane0].shown();
    for (size_t k = 0; k < len; k++)
      f.values.push_back(eval([&](const Shown& s) -> std::optional<double> {
        return s.values[k].has_value() ? std::optional<double>(s.values[k].value()) : std::nullopt;
      }));
    if (number)
      f.aggregated = eval([&](const Shown& s) -> std::optional<double> {
        return s.aggregated->has_value() ? std::optional<double>(s.aggregated->value()) : std::nullopt;
      });
    return f;
  };
  std::vector<Shown> formula_current;
  if (q.formula) {
    if (!breakdown.active()) {
      formula_groups = {0};
    } else {
      std::set<uint32_t> all;
      for (size_t si : q.formula->letters())
        for (auto& [g, gc] : cells[si]) all.insert(g);
      if (all.size() * n > kMaxTrendCells)
        return ResourceExhausted("formula: " + std::to_string(all.size()) + " breakdown values x " + std::to_string(n) +
                                 " intervals is over the limit of " + std::to_string(kMaxTrendCells) +
                                 " values: shorten the range, use a longer interval or break down by another property");
      formula_groups.assign(all.begin(), all.end());
    }
    std::vector<std::pair<double, size_t>> ranked;
    std::vector<Shown> shown;
    for (size_t i = 0; i < formula_groups.size(); i++) {
      shown.push_back(formula_shown(0, formula_groups[i]));
      double r = 0;
      if (number) {
        r = shown.back().aggregated->has_value() ? shown.back().aggregated->value() : -INFINITY;
      } else {
        for (const Measure& m : shown.back().values) r += m.value();
      }
      ranked.emplace_back(r, i);
    }
    std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    if (ranked.size() > q.breakdown_limit) ranked.resize(q.breakdown_limit);
    std::vector<uint32_t> kept_groups;
    for (auto& [r, i] : ranked) {
      kept_groups.push_back(formula_groups[i]);
      formula_current.push_back(std::move(shown[i]));
    }
    formula_groups = std::move(kept_groups);
  }

  // Current series (inputs unless formula_only, then the formula), then their comparisons.
  for (int pass = 0; pass < (comparing ? 2 : 1); pass++) {
    const bool previous = pass == 1;
    const size_t lane0 = previous ? S : 0;
    if (!q.formula_only)
      for (size_t si = 0; si < S; si++)
        for (uint32_t g : kept[si])
          row(q.series[si].label, si, previous, g, fin.Finish(lanes[lane0 + si], FindGroup(cells[lane0 + si], g)));
    if (q.formula)
      for (size_t i = 0; i < formula_groups.size(); i++)
        row(q.formula->text(), S, previous, formula_groups[i],
            previous ? formula_shown(S, formula_groups[i]) : std::move(formula_current[i]));
  }
  return out;
}

}  // namespace ns
