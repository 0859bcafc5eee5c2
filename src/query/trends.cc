// Trends: per series and breakdown value, one number per time bucket.
// total = rows; dau = distinct persons (after identity merges); sum/avg/min/max/p50/p90
// over a numeric property (rows where it is absent or not numeric are ignored).
// Buckets are calendar periods in the project's time zone; date_to is inclusive.
#include <algorithm>
#include <cmath>
#include <map>

#include "query/operators.h"
#include "query/scan.h"

namespace ns {

using nlohmann::json;

namespace {

struct Cell {
  double sum = 0, min = INFINITY, max = -INFINITY;
  uint64_t count = 0;
  std::vector<double> values;    // percentiles
  std::vector<uint32_t> persons; // dau
  uint32_t last_person = UINT32_MAX;
};

double Percentile(std::vector<double>& v, double p) {
  // Linear interpolation between closest ranks (as numpy's default and ClickHouse quantileExact* variants).
  std::sort(v.begin(), v.end());
  double pos = p * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

}  // namespace

StatusOr<json> RunTrends(const TrendsQuery& q, const StoreSnapshot& snap, const TimeZone& tz) {
  std::vector<Bucket> buckets = tz.MakeBuckets(q.from_day, q.to_day, q.interval);
  std::vector<int64_t> starts;
  for (auto& b : buckets) starts.push_back(b.start_ms);
  const int64_t from_ms = buckets.front().start_ms, to_ms = buckets.back().end_ms;
  const size_t nb = buckets.size();
  const PersonTable& pt = *snap.persons;

  BreakdownResolver breakdown(q.breakdown ? std::vector<PropertyRef>{*q.breakdown} : std::vector<PropertyRef>{}, snap);
  // cells[series][group] -> per-bucket cells
  std::vector<std::map<uint32_t, std::vector<Cell>>> cells(q.series.size());
  std::vector<uint32_t> groups;
  for (size_t si = 0; si < q.series.size(); si++) {
    const TrendsSeries& s = q.series[si];
    EventMatcher em = EventMatcher::Make(s.event, *snap.events);
    std::vector<Filter> all = q.filters;
    all.insert(all.end(), s.filters.begin(), s.filters.end());
    FilterSet filters(all, snap);
    const bool need_value = s.math != Math::kTotal && s.math != Math::kDau;
    for (const auto& bp : snap.blocks) {
      const Block& b = *bp;
      if (b.size() == 0 || b.max_ts() < from_ms || b.min_ts() >= to_ms || !em.MayMatch(b)) continue;
      auto fe = filters.ForBlock(b);
      if (fe.always_false) continue;
      const PropColumn* vc = need_value ? b.prop(s.property) : nullptr;
      if (need_value && !vc) continue;
      breakdown.Resolve(b, &groups);
      const auto& ts = b.ts();
      const auto& ev = b.ev();
      const auto& did = b.did();
      std::map<uint32_t, std::vector<Cell>>& by_group = cells[si];
      std::vector<Cell>* last_cells = nullptr;
      uint32_t last_group = UINT32_MAX;
      for (size_t i = 0; i < b.size(); i++) {
        if (!em.any && ev[i] != em.code) continue;
        int64_t t = ts[i];
        if (t < from_ms || t >= to_ms) continue;
        if (!fe.always_true && !fe.Match(i)) continue;
        double v = 0;
        if (need_value && !vc->GetNum(i, &v)) continue;
        size_t bi = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), t) - starts.begin()) - 1;
        uint32_t g = groups[i];
        if (g != last_group) {
          auto& vec = by_group[g];
          if (vec.empty()) vec.resize(nb);
          last_cells = &vec;
          last_group = g;
        }
        Cell& c = (*last_cells)[bi];
        c.count++;
        switch (s.math) {
          case Math::kTotal: break;
          case Math::kDau: {
            uint32_t p = did[i] < pt.size() ? pt.person_of[did[i]] : did[i];
            if (p != c.last_person) {
              c.persons.push_back(p);
              c.last_person = p;
            }
            break;
          }
          case Math::kP50:
          case Math::kP90: c.values.push_back(v); break;
          default:
            c.sum += v;
            c.min = std::min(c.min, v);
            c.max = std::max(c.max, v);
        }
      }
    }
  }
  json out;
  out["kind"] = "trends";
  out["timezone"] = tz.name();
  out["interval"] = std::string(IntervalName(q.interval));
  out["date_from"] = FormatDate(q.from_day);
  out["date_to"] = FormatDate(q.to_day);
  json dates = json::array();
  for (auto& b : buckets) dates.push_back(b.label);
  json series = json::array();
  for (size_t si = 0; si < q.series.size(); si++) {
    const TrendsSeries& s = q.series[si];
    struct Row { uint32_t group; json values; double total; };
    std::vector<Row> rows;
    auto& by_group = cells[si];
    if (by_group.empty() && !breakdown.active()) by_group[0].resize(nb);
    for (auto& [g, vec] : by_group) {
      json values = json::array();
      double total = 0;
      for (Cell& c : vec) {
        json v;
        switch (s.math) {
          case Math::kTotal: v = c.count; break;
          case Math::kDau: {
            std::sort(c.persons.begin(), c.persons.end());
            v = static_cast<uint64_t>(std::unique(c.persons.begin(), c.persons.end()) - c.persons.begin());
            break;
          }
          case Math::kSum: v = c.sum; break;
          case Math::kAvg: v = c.count ? json(c.sum / static_cast<double>(c.count)) : json(); break;
          case Math::kMin: v = c.count ? json(c.min) : json(); break;
          case Math::kMax: v = c.count ? json(c.max) : json(); break;
          case Math::kP50: v = c.values.empty() ? json() : json(Percentile(c.values, 0.5)); break;
          case Math::kP90: v = c.values.empty() ? json() : json(Percentile(c.values, 0.9)); break;
        }
        if (v.is_number()) total += v.get<double>();
        values.push_back(std::move(v));
      }
      rows.push_back({g, std::move(values), total});
    }
    // Largest breakdown values first; keep breakdown_limit of them.
    std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.total > b.total; });
    if (rows.size() > q.breakdown_limit) rows.resize(q.breakdown_limit);
    for (auto& r : rows) {
      json sj;
      sj["label"] = s.label;
      sj["event"] = s.event;
      sj["math"] = json(s.math == Math::kTotal ? "total" : s.math == Math::kDau ? "dau" : s.math == Math::kSum ? "sum"
                        : s.math == Math::kAvg ? "avg" : s.math == Math::kMin ? "min" : s.math == Math::kMax ? "max"
                        : s.math == Math::kP50 ? "p50" : "p90");
      sj["breakdown_value"] = breakdown.active() ? breakdown.Value(r.group) : json();
      sj["dates"] = dates;
      sj["values"] = std::move(r.values);
      series.push_back(std::move(sj));
    }
  }
  out["series"] = std::move(series);
  return out;
}

}  // namespace ns
