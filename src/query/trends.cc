// Trends: per series and breakdown value, one number per time bucket.
// total = rows; dau = distinct persons (after identity merges); sum/avg/min/max/p50/p90
// over a numeric property (rows where it is absent or not numeric are ignored).
// Buckets are calendar periods in the project's time zone; date_to is inclusive.
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

namespace ns {

using nlohmann::json;

namespace {

struct Cell {
  double sum = 0, min = INFINITY, max = -INFINITY;
  uint64_t count = 0;
  std::vector<double> values;     // percentiles
  std::vector<uint32_t> persons;  // dau (list mode)
  std::vector<uint64_t> bits;     // dau (dense mode): bit per person
  uint32_t last_person = UINT32_MAX;
};

// Distinct persons of a cell: a list while it is smaller than a bitset over all persons, then
// the bitset. A cell's memory is so bounded by its rows, whatever the number of cells (a
// breakdown by a unique id over ten years of days is 100k x 3650 cells, nearly all empty).
struct DauSet {
  size_t words;  // bitset size in 64-bit words
  void Add(Cell& c, uint32_t p) const {
    if (!c.bits.empty()) {
      c.bits[p >> 6] |= 1ULL << (p & 63);
    } else if (p != c.last_person) {
      c.persons.push_back(p);
      c.last_person = p;
      if (c.persons.size() > 2 * words) ToBits(c);
    }
  }
  void ToBits(Cell& c) const {
    c.bits.assign(words, 0);
    for (uint32_t q : c.persons) c.bits[q >> 6] |= 1ULL << (q & 63);
    std::vector<uint32_t>().swap(c.persons);
  }
  void Merge(Cell& a, Cell& c) const {
    if (!c.bits.empty() && a.bits.empty()) ToBits(a);
    if (!a.bits.empty()) {
      for (uint32_t q : c.persons) a.bits[q >> 6] |= 1ULL << (q & 63);
      for (size_t w = 0; w < c.bits.size(); w++) a.bits[w] |= c.bits[w];
    } else {
      a.persons.insert(a.persons.end(), c.persons.begin(), c.persons.end());
      if (a.persons.size() > 2 * words) ToBits(a);
    }
  }
  static uint64_t Count(Cell& c) {
    if (!c.bits.empty()) {
      uint64_t n = 0;
      for (uint64_t w : c.bits) n += static_cast<uint64_t>(__builtin_popcountll(w));
      return n;
    }
    std::sort(c.persons.begin(), c.persons.end());
    c.persons.erase(std::unique(c.persons.begin(), c.persons.end()), c.persons.end());  // may be counted twice
    return c.persons.size();
  }
};

// The cells of one breakdown group: one per time bucket, dense without a breakdown (one group,
// every bucket used), sparse with one (only the buckets that have rows exist).
struct GroupCells {
  std::vector<Cell> dense;
  std::unordered_map<uint32_t, Cell> sparse;
  bool is_dense = false;
  Cell& At(size_t bucket) { return is_dense ? dense[bucket] : sparse[static_cast<uint32_t>(bucket)]; }
  Cell* Find(size_t bucket) {
    if (is_dense) return &dense[bucket];
    auto it = sparse.find(static_cast<uint32_t>(bucket));
    return it == sparse.end() ? nullptr : &it->second;
  }
  size_t cells() const { return is_dense ? dense.size() : sparse.size(); }
};

// Cells a query may hold (~120 bytes each, plus their rows): beyond this it is refused with
// resource_exhausted instead of taking the machine's memory.
constexpr size_t kMaxTrendCells = 8u << 20;

double Percentile(std::vector<double>& v, double p) {
  // Linear interpolation between closest ranks (as numpy's default and ClickHouse quantileExact* variants).
  std::sort(v.begin(), v.end());
  double pos = p * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

}  // namespace

StatusOr<TrendsResult> RunTrends(const TrendsQuery& q, const StoreSnapshot& snap, const TimeZone& tz,
                                 const Deadline* deadline) {
  std::vector<Bucket> buckets = tz.MakeBuckets(q.from_day, q.to_day, q.interval);
  std::vector<int64_t> starts;
  for (auto& b : buckets) starts.push_back(b.start_ms);
  const int64_t from_ms = buckets.front().start_ms, to_ms = buckets.back().end_ms;
  const size_t nb = buckets.size();
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
  const DauSet dau{(np + 63) / 64 + 1};
  const bool dense_cells = !breakdown.active();
  if (breakdown.active() && q.breakdown_limit * nb > kMaxTrendCells)
    return ResourceExhausted(
        "breakdown_limit " + std::to_string(q.breakdown_limit) + " x " + std::to_string(nb) +
        " intervals is over the limit of " + std::to_string(kMaxTrendCells) +
        " values in one answer: lower breakdown_limit, shorten the range or use a longer interval");

  using Cells = std::vector<std::map<uint32_t, GroupCells>>;  // [series][group] -> per-bucket cells
  const int slots = std::max(1, std::min<int>(QueryThreads(), static_cast<int>(blocks.size())));
  std::vector<Cells> partial(static_cast<size_t>(slots), Cells(q.series.size()));
  std::vector<FilterSet> series_filters;
  std::vector<EventMatcher> matchers;
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
    const auto& ts = b.ts();
    const auto& ev = b.ev();
    const auto& did = b.did();
    // Bucket of every row at once when the block lies in one bucket (the usual case:
    // segments hold one UTC day).
    auto bucket_of = [&](int64_t t) {
      return static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), t) - starts.begin()) - 1;
    };
    const size_t b_lo = bucket_of(std::max(b.min_ts(), from_ms)), b_hi = bucket_of(std::min(b.max_ts(), to_ms - 1));
    const bool one_bucket = b_lo == b_hi;
    for (size_t si = 0; si < q.series.size(); si++) {
      const TrendsSeries& s = q.series[si];
      const EventMatcher& em = matchers[si];
      if (!em.MayMatch(b)) continue;
      auto fe = series_filters[si].ForBlock(b);
      if (fe.always_false) continue;
      const bool need_value = s.math != Math::kTotal && s.math != Math::kDau;
      const PropColumn* vc = need_value ? b.prop(s.property) : nullptr;
      if (need_value && !vc) continue;
      std::map<uint32_t, GroupCells>& by_group = cells[si];
      GroupCells* last_cells = nullptr;
      uint32_t last_group = UINT32_MAX;
      Cell* last_cell = nullptr;
      size_t last_bucket = SIZE_MAX;
      size_t new_cells = 0;
      const BlockGroups* groups = breakdown.active() ? &block_groups[bi] : nullptr;
      // Rows of the series' event only (the block's event index), or every row for "$any".
      const uint32_t* rows_begin = nullptr;
      const uint32_t* rows_end = nullptr;
      if (!em.any) std::tie(rows_begin, rows_end) = b.EventRows(em.code);
      const size_t count = em.any ? b.size() : static_cast<size_t>(rows_end - rows_begin);
      (void)ev;
      for (size_t j = 0; j < count; j++) {
        const size_t i = em.any ? j : rows_begin[j];
        const int64_t t = ts[i];
        if (t < from_ms || t >= to_ms) continue;
        if (!fe.always_true && !fe.Match(i)) continue;
        double v = 0;
        if (need_value && !vc->GetNum(i, &v)) continue;
        const size_t bi2 = one_bucket ? b_lo : bucket_of(t);
        const uint32_t g = groups ? (*groups)[i] : 0;
        if (g != last_group) {
          auto& gc = by_group[g];
          if (dense_cells && !gc.is_dense) {
            gc.is_dense = true;
            gc.dense.resize(nb);
          }
          last_cells = &gc;
          last_group = g;
          last_bucket = SIZE_MAX;
        }
        if (bi2 != last_bucket) {
          const size_t before = last_cells->cells();
          last_cell = &last_cells->At(bi2);
          new_cells += last_cells->cells() - before;
          last_bucket = bi2;
        }
        Cell& c = *last_cell;
        c.count++;
        switch (s.math) {
          case Math::kTotal: break;
          case Math::kDau: {
            const uint32_t p = pt.PersonOf(did[i]);
            dau.Add(c, p);
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
      if (new_cells && cell_count.fetch_add(new_cells, std::memory_order_relaxed) + new_cells > kMaxTrendCells)
        over_budget.store(true, std::memory_order_relaxed);
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
  auto merge_cell = [&](Cell& a, Cell& c) {
    a.count += c.count;
    a.sum += c.sum;
    a.min = std::min(a.min, c.min);
    a.max = std::max(a.max, c.max);
    a.values.insert(a.values.end(), c.values.begin(), c.values.end());
    dau.Merge(a, c);
  };
  for (size_t t = 1; t < partial.size(); t++) {
    for (size_t si = 0; si < q.series.size(); si++) {
      for (auto& [g, gc] : partial[t][si]) {
        auto& dst = cells[si][g];
        if (dst.cells() == 0) {
          dst = std::move(gc);
          continue;
        }
        if (gc.is_dense)
          for (size_t k = 0; k < nb; k++) merge_cell(dst.At(k), gc.dense[k]);
        else
          for (auto& [k, c] : gc.sparse) merge_cell(dst.At(k), c);
      }
      partial[t][si].clear();
    }
  }
  TrendsResult out;
  out.timezone = tz.name();
  out.interval = q.interval;
  out.date_from = q.from_day;
  out.date_to = q.to_day;
  for (auto& b : buckets) out.dates.push_back(b.label);
  for (size_t si = 0; si < q.series.size(); si++) {
    const TrendsSeries& s = q.series[si];
    auto& by_group = cells[si];
    if (by_group.empty() && !breakdown.active()) {
      by_group[0].is_dense = true;
      by_group[0].dense.resize(nb);
    }
    // The value of a cell (empty cells: as a cell without rows). Computed once per cell: the
    // totals rank the groups, then the kept groups get their values.
    Cell empty;
    auto value_of = [&](Cell& c) -> Measure {
      switch (s.math) {
        case Math::kTotal: return Measure::Count(c.count);
        case Math::kDau: return Measure::Count(DauSet::Count(c));
        case Math::kSum: return Measure::Real(c.sum);
        case Math::kAvg: return c.count ? Measure::Real(c.sum / static_cast<double>(c.count)) : Measure::None();
        case Math::kMin: return c.count ? Measure::Real(c.min) : Measure::None();
        case Math::kMax: return c.count ? Measure::Real(c.max) : Measure::None();
        case Math::kP50: return c.values.empty() ? Measure::None() : Measure::Real(Percentile(c.values, 0.5));
        case Math::kP90: return c.values.empty() ? Measure::None() : Measure::Real(Percentile(c.values, 0.9));
      }
      return Measure::None();
    };
    struct Row {
      uint32_t group;
      GroupCells* cells;
      double total;
      std::optional<std::vector<Measure>> values;
    };
    std::vector<Row> rows;
    for (auto& [g, gc] : by_group) {
      double total = 0;
      auto add = [&](Cell& c) {
        Measure v = value_of(c);
        total += v.value();
        return v;
      };
      std::optional<std::vector<Measure>> vals;
      if (gc.is_dense) {
        vals.emplace();
        vals->reserve(gc.dense.size());
        for (Cell& c : gc.dense) vals->push_back(add(c));
      } else {
        for (auto& [k, c] : gc.sparse) add(c);  // values made below for the kept rows only
      }
      rows.push_back({g, &gc, total, std::move(vals)});
    }
    // Largest breakdown values first; keep breakdown_limit of them.
    std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.total > b.total; });
    if (rows.size() > q.breakdown_limit) rows.resize(q.breakdown_limit);
    for (auto& r : rows) {
      if (!r.values) {
        r.values.emplace();
        for (size_t k = 0; k < nb; k++) {
          Cell* c = r.cells->Find(k);
          r.values->push_back(value_of(c ? *c : empty));
        }
      }
      TrendsSeriesResult sr;
      sr.label = s.label;
      sr.event = s.event;
      sr.math = s.math;
      sr.breakdown_value = breakdown.active() ? breakdown.Value(r.group) : json();
      sr.values = std::move(*r.values);
      out.series.push_back(std::move(sr));
    }
  }
  return out;
}

// ---------------------------------------------------------------- registration

namespace {
ResultTable TrendsTable(const json& r) {
  ResultTable rows;
  std::vector<json> head{"date"};
  for (const auto& s : r["series"]) {
    std::string l = s["label"].get<std::string>();
    if (!s["breakdown_value"].is_null())
      l += " [" +
           (s["breakdown_value"].is_string() ? s["breakdown_value"].get<std::string>() : s["breakdown_value"].dump()) +
           "]";
    head.push_back(l);
  }
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
