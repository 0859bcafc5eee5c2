// Trends: per series and breakdown value, one number per time bucket.
// total = rows; dau = distinct persons (after identity merges); sum/avg/min/max/p50/p90
// over a numeric property (rows where it is absent or not numeric are ignored); the
// per-person maths over each person's count of rows; weekly/monthly active over rolling
// windows of local days. Buckets are calendar periods in the project's time zone; date_to is
// inclusive. This file plans the lanes (a series over the range, and over the comparison
// range) and fills their cells in one parallel pass over the blocks; trends_post.cc makes
// the answer from the cells.
#include <date/date.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <thread>
#include <tuple>
#include <unordered_map>

#include "query/operators.h"
#include "query/person_scan.h"
#include "query/scan.h"
#include "query/trends_cells.h"

namespace ns {

using nlohmann::json;

namespace {

// `day` moved by `months` calendar months, the day of the month clamped to the month's
// length (2024-02-29 minus 12 months is 2023-02-28).
int32_t AddMonthsClamped(int32_t day, int months) {
  const date::year_month_day ymd{date::sys_days{date::days{day}}};
  const date::year_month ym = date::year_month{ymd.year(), ymd.month()} + date::months{months};
  const date::day last = date::year_month_day_last{ym.year(), date::month_day_last{ym.month()}}.day();
  const date::day d = std::min(ymd.day(), last);
  return static_cast<int32_t>(date::sys_days{ym / d}.time_since_epoch().count());
}

// The comparison range of [from, to] that has `n` buckets: shifted by a whole number of
// intervals so that bucket k of the comparison is the period of bucket k, shifted
// (docs/queries.md "Compare").
std::pair<int32_t, int32_t> CompareRange(const TrendsQuery& q, size_t n) {
  const int32_t len = q.to_day - q.from_day;
  const bool year = q.compare == TrendsCompare::kPreviousYear;
  int32_t from = q.from_day;
  switch (q.interval) {
    case Interval::kHour:
    case Interval::kDay: from = year ? AddMonthsClamped(q.from_day, -12) : q.from_day - (len + 1); break;
    case Interval::kWeek: from = q.from_day - (year ? 364 : 7 * static_cast<int32_t>(n)); break;
    case Interval::kMonth: {
      const int m = year ? 12 : static_cast<int>(n);
      return {AddMonthsClamped(q.from_day, -m), AddMonthsClamped(q.to_day, -m)};
    }
  }
  return {from, from + len};
}

// The `lead` whole intervals just before the interval that holds `from_day`.
std::vector<Bucket> LeadBuckets(const TimeZone& tz, int32_t from_day, Interval interval, size_t lead) {
  if (lead == 0) return {};
  const int32_t p = TimeZone::PeriodStartDay(from_day, interval);
  const int32_t n = static_cast<int32_t>(lead);
  switch (interval) {
    case Interval::kDay: return tz.MakeBuckets(p - n, p - 1, interval);
    case Interval::kWeek: return tz.MakeBuckets(p - 7 * n, p - 1, interval);
    case Interval::kMonth: return tz.MakeBuckets(AddMonthsClamped(p, -n), p - 1, interval);
    case Interval::kHour: {
      std::vector<Bucket> hours = tz.MakeBuckets(from_day - (n / 23 + 2), from_day - 1, interval);
      hours.erase(hours.begin(), hours.end() - static_cast<std::ptrdiff_t>(lead));
      return hours;
    }
  }
  return {};
}

TrendsLane PlanLane(const TrendsQuery& q, const TimeZone& tz, size_t series, bool previous, int32_t from_day,
                    int32_t to_day) {
  TrendsLane lane;
  lane.series = series;
  lane.previous = previous;
  lane.from_day = from_day;
  lane.to_day = to_day;
  lane.lead = static_cast<size_t>(q.smoothing - 1);
  lane.grid = LeadBuckets(tz, from_day, q.interval, lane.lead);
  for (Bucket& b : tz.MakeBuckets(from_day, to_day, q.interval)) lane.grid.push_back(std::move(b));
  for (const Bucket& b : lane.grid) lane.end_day.push_back(tz.LocalDay(b.end_ms - 1));
  const int window = RollingDays(q.series[series].math);
  lane.daily = window > 0;
  if (lane.daily) {
    lane.first_day = lane.end_day.front() - window + 1;
    for (int32_t d = lane.first_day; d <= to_day; d++) {
      lane.starts.push_back(tz.DayStartMs(d));
      lane.ends.push_back(tz.DayStartMs(d + 1));
    }
  } else {
    for (const Bucket& b : lane.grid) {
      lane.starts.push_back(b.start_ms);
      lane.ends.push_back(b.end_ms);
    }
  }
  return lane;
}

}  // namespace

StatusOr<TrendsResult> RunTrends(const TrendsQuery& q, const StoreSnapshot& snap, const TimeZone& tz,
                                 const Deadline* deadline) {
  // The lanes: every series over the range, then (compare) every series over the shifted range.
  std::vector<TrendsLane> lanes;
  for (size_t si = 0; si < q.series.size(); si++) lanes.push_back(PlanLane(q, tz, si, false, q.from_day, q.to_day));
  if (q.compare != TrendsCompare::kNone) {
    auto [from, to] = CompareRange(q, lanes[0].shown());
    for (size_t si = 0; si < q.series.size(); si++) lanes.push_back(PlanLane(q, tz, si, true, from, to));
  }
  int64_t from_ms = INT64_MAX, to_ms = INT64_MIN;
  size_t max_cells = 0;
  for (const TrendsLane& l : lanes) {
    from_ms = std::min(from_ms, l.starts.front());
    to_ms = std::max(to_ms, l.ends.back());
    max_cells = std::max(max_cells, l.starts.size());
  }
  const PersonTable& pt = *snap.persons;

  BreakdownResolver breakdown(q.breakdown ? std::vector<PropertyRef>{*q.breakdown} : std::vector<PropertyRef>{}, snap);
  // Blocks in range, with breakdown groups resolved up front (the resolver interns values
  // and is not thread-safe; the scan below runs on several threads).
  std::vector<const Block*> blocks;
  for (const auto& bp : snap.blocks)
    if (bp->size() && bp->max_ts() >= from_ms && bp->min_ts() < to_ms) blocks.push_back(bp.get());
  std::vector<BlockGroups> block_groups(blocks.size());
  if (breakdown.active())
    for (size_t b = 0; b < blocks.size(); b++) breakdown.ResolveBlock(*blocks[b], &block_groups[b]);
  const size_t np = pt.size();
  const TrendsDistinct distinct{(np + 63) / 64 + 1};
  const bool dense_cells = !breakdown.active();
  if (breakdown.active() && q.breakdown_limit * max_cells > kMaxTrendCells)
    return ResourceExhausted(
        "breakdown_limit " + std::to_string(q.breakdown_limit) + " x " + std::to_string(max_cells) +
        " intervals is over the limit of " + std::to_string(kMaxTrendCells) +
        " values in one answer: lower breakdown_limit, shorten the range or use a longer interval");

  using Cells = std::vector<TrendsLaneCells>;  // [lane][group] -> per-cell rows
  const int slots = std::max(1, std::min<int>(QueryThreads(), static_cast<int>(blocks.size())));
  std::vector<Cells> partial(static_cast<size_t>(slots), Cells(lanes.size()));
  std::vector<FilterSet> series_filters;
  std::vector<EventMatcher> matchers;
  std::vector<std::vector<size_t>> series_lanes(q.series.size());
  for (size_t li = 0; li < lanes.size(); li++) series_lanes[lanes[li].series].push_back(li);
  for (const auto& s : q.series) {
    std::vector<Filter> all = q.filters;
    all.insert(all.end(), s.filters.begin(), s.filters.end());
    series_filters.emplace_back(all, snap);
    matchers.push_back(EventMatcher::Make(s.event, *snap.events));
  }
  std::atomic<size_t> cell_count{0};
  std::atomic<bool> over_budget{false};
  auto scan_block = [&](size_t bi, Cells& cells) {
    if (over_budget.load(std::memory_order_relaxed)) return;
    const Block& b = *blocks[bi];
    const RetireWhenDone done(b, snap.reader_epoch);  // read once: freed now if over the budget
    const auto& ts = b.ts();
    const auto& did = b.did();
    const BlockGroups* groups = breakdown.active() ? &block_groups[bi] : nullptr;
    for (size_t si = 0; si < q.series.size(); si++) {
      const TrendsSeries& s = q.series[si];
      const EventMatcher& em = matchers[si];
      if (!em.MayMatch(b)) continue;
      auto fe = series_filters[si].ForBlock(b);
      if (fe.always_false) continue;
      const bool need_value = s.math == Math::kSum || s.math == Math::kAvg || s.math == Math::kMin ||
                              s.math == Math::kMax || s.math == Math::kP50 || s.math == Math::kP90;
      const PropColumn* vc = need_value ? b.prop(s.property) : nullptr;
      if (need_value && !vc) continue;
      const bool distinct_persons = s.math == Math::kDau || RollingDays(s.math) > 0;
      const bool per_person =
          s.math == Math::kAvgPerPerson || s.math == Math::kMedianPerPerson || s.math == Math::kP90PerPerson;
      // Rows of the series' event only (the block's event index), or every row for "$any".
      const uint32_t* rows_begin = nullptr;
      const uint32_t* rows_end = nullptr;
      if (!em.any) std::tie(rows_begin, rows_end) = b.EventRows(em.code);
      const size_t count = em.any ? b.size() : static_cast<size_t>(rows_end - rows_begin);
      for (size_t li : series_lanes[si]) {
        const TrendsLane& lane = lanes[li];
        const int64_t lane_from = lane.starts.front(), lane_to = lane.ends.back();
        if (b.max_ts() < lane_from || b.min_ts() >= lane_to) continue;
        const auto& starts = lane.starts;
        auto cell_of = [&](int64_t t) {
          return static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), t) - starts.begin()) - 1;
        };
        // Cell of every row at once when the block lies in one cell (the usual case:
        // segments hold one UTC day).
        const size_t c_lo = cell_of(std::max(b.min_ts(), lane_from)), c_hi = cell_of(std::min(b.max_ts(), lane_to - 1));
        const bool one_cell = c_lo == c_hi;
        const size_t lane_cells = lane.starts.size();
        TrendsLaneCells& by_group = cells[li];
        // Distinct persons of a block wholly inside one cell, unfiltered and not broken down
        // (Q1, DAU): rows come grouped by person, so one bit per run of a distinct id and no
        // per-row time or filter checks.
        if (distinct_persons && one_cell && fe.always_true && !groups && count > 0 && b.min_ts() >= lane_from &&
            b.max_ts() < lane_to && b.max_ts() < lane.ends[c_lo]) {
          auto& gc = by_group[0];
          if (dense_cells && !gc.is_dense) {
            gc.is_dense = true;
            gc.dense.resize(lane_cells);
          }
          const size_t before = gc.cells();
          TrendsCell& c = gc.At(c_lo);
          const size_t added = gc.cells() - before;
          c.count += count;
          const uint32_t* po = pt.person_of().data();
          const size_t po_size = pt.person_of().size();
          const uint32_t* dids = did.data();
          uint32_t last = UINT32_MAX;
          auto add = [&](uint32_t d) {
            if (d == last) return;
            last = d;
            distinct.Add(c, d < po_size ? po[d] : d);
          };
          if (em.any) {
            for (size_t j = 0; j < count; j++) add(dids[j]);
          } else {
            for (size_t j = 0; j < count; j++) add(dids[rows_begin[j]]);
          }
          if (added && cell_count.fetch_add(added, std::memory_order_relaxed) + added > kMaxTrendCells)
            over_budget.store(true, std::memory_order_relaxed);
          continue;
        }
        TrendsGroupCells* last_cells = nullptr;
        uint32_t last_group = UINT32_MAX;
        TrendsCell* last_cell = nullptr;
        size_t last_index = SIZE_MAX;
        size_t new_cells = 0;
        for (size_t j = 0; j < count; j++) {
          const size_t i = em.any ? j : rows_begin[j];
          const int64_t t = ts[i];
          if (t < lane_from || t >= lane_to) continue;
          const size_t k = one_cell ? c_lo : cell_of(t);
          if (t >= lane.ends[k]) continue;  // between cells (before a clipped first bucket)
          if (!fe.always_true && !fe.Match(i)) continue;
          double v = 0;
          if (need_value && !vc->GetNum(i, &v)) continue;
          const uint32_t g = groups ? (*groups)[i] : 0;
          if (g != last_group) {
            auto& gc = by_group[g];
            if (dense_cells && !gc.is_dense) {
              gc.is_dense = true;
              gc.dense.resize(lane_cells);
            }
            last_cells = &gc;
            last_group = g;
            last_index = SIZE_MAX;
          }
          if (k != last_index) {
            const size_t before = last_cells->cells();
            last_cell = &last_cells->At(k);
            new_cells += last_cells->cells() - before;
            last_index = k;
          }
          TrendsCell& c = *last_cell;
          c.count++;
          if (distinct_persons) {
            distinct.Add(c, pt.PersonOf(did[i]));
          } else if (per_person) {
            c.row_persons.push_back(pt.PersonOf(did[i]));
          } else if (s.math == Math::kP50 || s.math == Math::kP90) {
            c.values.push_back(v);
          } else if (need_value) {
            c.sum += v;
            c.min = std::min(c.min, v);
            c.max = std::max(c.max, v);
          }
        }
        if (new_cells && cell_count.fetch_add(new_cells, std::memory_order_relaxed) + new_cells > kMaxTrendCells)
          over_budget.store(true, std::memory_order_relaxed);
      }
    }
  };
  {
    std::vector<std::thread> threads;
    for (int t = 1; t < slots; t++)
      threads.emplace_back([&, t] {
        for (size_t bi = static_cast<size_t>(t); bi < blocks.size(); bi += static_cast<size_t>(slots)) {
          if (deadline && deadline->Expired()) break;
          scan_block(bi, partial[static_cast<size_t>(t)]);
        }
      });
    for (size_t bi = 0; bi < blocks.size(); bi += static_cast<size_t>(slots)) {
      if (deadline && deadline->Expired()) break;
      scan_block(bi, partial[0]);
    }
    for (auto& th : threads) th.join();
  }
  if (deadline && deadline->fired()) return deadline->ToStatus();
  if (over_budget.load())
    return ResourceExhausted("the query needs more than " + std::to_string(kMaxTrendCells) +
                             " (breakdown value, interval) cells: the breakdown property has too many values for this "
                             "range; shorten the range, use a longer interval or break down by another property");
  // Merge the partial results into partial[0].
  Cells& cells = partial[0];
  auto merge_cell = [&](TrendsCell& a, TrendsCell& c) {
    a.count += c.count;
    a.sum += c.sum;
    a.min = std::min(a.min, c.min);
    a.max = std::max(a.max, c.max);
    a.values.insert(a.values.end(), c.values.begin(), c.values.end());
    a.row_persons.insert(a.row_persons.end(), c.row_persons.begin(), c.row_persons.end());
    distinct.Merge(a, c);
  };
  for (size_t t = 1; t < partial.size(); t++) {
    for (size_t li = 0; li < lanes.size(); li++) {
      for (auto& [g, gc] : partial[t][li]) {
        auto& dst = cells[li][g];
        if (dst.cells() == 0) {
          dst = std::move(gc);
          continue;
        }
        if (gc.is_dense)
          for (size_t k = 0; k < gc.dense.size(); k++) merge_cell(dst.At(k), gc.dense[k]);
        else
          for (auto& [k, c] : gc.sparse) merge_cell(dst.At(k), c);
      }
      partial[t][li].clear();
    }
  }
  return FinishTrends(q, lanes, cells, breakdown, np, tz);
}

// ---------------------------------------------------------------- registration

namespace {
ResultTable TrendsTable(const json& r) {
  ResultTable rows;
  auto label_of = [](const json& s) {
    std::string l = s["label"].get<std::string>();
    const json& b = s["breakdown_value"];
    if (!b.is_null()) l += " [" + (b.is_string() ? b.get<std::string>() : b.dump()) + "]";
    return l;
  };
  if (r.value("display", "") == "number") {  // one row per series: its number over the range
    rows.push_back({"label", "value"});
    for (const auto& s : r["series"]) rows.push_back({label_of(s), s.value("aggregated_value", json())});
    return rows;
  }
  std::vector<json> head{"date"};
  for (const auto& s : r["series"]) head.push_back(label_of(s));
  rows.push_back(head);
  if (!r["series"].empty()) {
    const auto& dates = r["series"][0]["dates"];
    for (size_t i = 0; i < dates.size(); i++) {
      std::vector<json> row{dates[i]};
      for (const auto& s : r["series"]) row.push_back(s["values"][i]);
      rows.push_back(row);
    }
  }
  return rows;
}
}  // namespace

const QueryKind kTrendsKind{"trends",
                            {},
                            [](const json& request, const QueryContext& ctx) -> StatusOr<json> {
                              NS_ASSIGN_OR_RETURN(TrendsQuery q, ParseTrendsQuery(request));
                              NS_RETURN_IF_ERROR(ctx.BindCohorts(q.filters));
                              for (auto& s : q.series) NS_RETURN_IF_ERROR(ctx.BindCohorts(s.filters));
                              NS_ASSIGN_OR_RETURN(TrendsResult r, RunTrends(q, ctx.snap, ctx.tz, ctx.deadline));
                              return ToJson(r);
                            },
                            [](const json& request) { return ParseTrendsQuery(request).status(); },
                            TrendsTable};

}  // namespace ns
