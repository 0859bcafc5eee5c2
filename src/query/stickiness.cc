// Stickiness (docs/queries.md "Stickiness"): for each series (an event and filters), the
// number of persons by how many intervals of the range they were active in — the buckets of
// trends over [date_from, date_to] (days of a week, days of a month, hours of a day, weeks
// of a quarter). A person is active in an interval if at least one of their events (after
// identity merges) matching the series falls in it; persons active in no interval are not
// counted. One pass of the per-person driver: each person's events arrive in time order, so
// counting the changes of interval counts the distinct intervals.
#include <algorithm>

#include "query/json_fields.h"
#include "query/operators.h"
#include "query/person_scan.h"
#include "query/scan.h"

namespace ns {

using nlohmann::json;

namespace {

constexpr size_t kMaxStickinessSeries = 20;

struct StickinessSeries {
  std::string event;
  std::vector<Filter> filters;
  std::string label;
};

struct StickinessQuery {
  std::vector<StickinessSeries> series;
  int32_t from_day = 0, to_day = 0;
  Interval interval = Interval::kDay;
  std::vector<Filter> filters;  // apply to every series
};

struct StickinessSeriesResult {
  std::string label, event;
  std::vector<uint64_t> persons_by_intervals;  // [k - 1]: persons active in exactly k intervals
  uint64_t persons = 0;                        // persons active in at least one
};

struct StickinessResult {
  std::string timezone;
  Interval interval = Interval::kDay;
  int32_t date_from = 0, date_to = 0;
  size_t intervals = 0;  // intervals in the range: the largest possible count
  std::vector<StickinessSeriesResult> series;
};

StatusOr<StickinessQuery> ParseStickinessQuery(const json& j) {
  NS_RETURN_IF_ERROR(CheckFields(j, "", {"kind", "series", "interval", "date_from", "date_to", "filters", "cohort"}));
  StickinessQuery q;
  NS_RETURN_IF_ERROR(ParseDateRange(j, &q.from_day, &q.to_day));
  NS_ASSIGN_OR_RETURN(std::string iv, GetString(j, "interval", "", false, "day"));
  NS_ASSIGN_OR_RETURN(q.interval, ParseInterval(iv));
  if (q.interval == Interval::kHour && q.to_day - q.from_day > 93)
    return InvalidArgument("interval: hour is limited to ranges of at most 94 days", "interval");
  NS_ASSIGN_OR_RETURN(q.filters, ParseFilters(j.value("filters", json::array()), "filters"));
  NS_RETURN_IF_ERROR(AppendCohortField(j, &q.filters));
  auto s = j.find("series");
  if (s == j.end()) return InvalidArgument("series: required field is missing", "series");
  if (!s->is_array() || s->empty()) return InvalidArgument("series: expected a non-empty array", "series");
  if (s->size() > kMaxStickinessSeries)
    return InvalidArgument("series: at most " + std::to_string(kMaxStickinessSeries) + " series per query", "series");
  for (size_t i = 0; i < s->size(); i++) {
    const json& sj = (*s)[i];
    const std::string f = "series[" + std::to_string(i) + "]";
    if (!sj.is_object()) return InvalidArgument(f + ": expected an object", f);
    NS_RETURN_IF_ERROR(CheckFields(sj, f, {"event", "filters", "label"}));
    StickinessSeries ss;
    NS_ASSIGN_OR_RETURN(ss.event, GetString(sj, "event", f, true));
    if (ss.event.empty()) return InvalidArgument(f + ".event: must not be empty", f + ".event");
    NS_ASSIGN_OR_RETURN(ss.filters, ParseFilters(sj.value("filters", json::array()), f + ".filters"));
    NS_ASSIGN_OR_RETURN(ss.label, GetString(sj, "label", f, false, ss.event));
    q.series.push_back(std::move(ss));
  }
  return q;
}

StatusOr<StickinessResult> RunStickiness(const StickinessQuery& q, const QueryContext& ctx) {
  const StoreSnapshot& snap = ctx.snap;
  const PersonTable& pt = *snap.persons;
  const size_t np = pt.size(), S = q.series.size();
  const std::vector<Bucket> buckets = ctx.tz.MakeBuckets(q.from_day, q.to_day, q.interval);
  std::vector<int64_t> starts;
  for (const Bucket& b : buckets) starts.push_back(b.start_ms);
  const int64_t from_ms = buckets.front().start_ms, to_ms = buckets.back().end_ms;

  StickinessResult out;
  out.timezone = ctx.tz.name();
  out.interval = q.interval;
  out.date_from = q.from_day;
  out.date_to = q.to_day;
  out.intervals = buckets.size();

  std::vector<EventMatcher> matchers;
  std::vector<FilterSet> filters;
  std::vector<uint32_t> codes;
  bool any = false, some = false;
  for (const StickinessSeries& s : q.series) {
    std::vector<Filter> all = q.filters;
    all.insert(all.end(), s.filters.begin(), s.filters.end());
    filters.emplace_back(all, snap);
    matchers.push_back(EventMatcher::Make(s.event, *snap.events));
    const EventMatcher& m = matchers.back();
    any |= m.any;
    some |= !m.none;
    if (!m.any && !m.none) codes.push_back(m.code);
  }
  std::sort(codes.begin(), codes.end());
  codes.erase(std::unique(codes.begin(), codes.end()), codes.end());

  // Per (series, person): the last interval seen + 1 (0: none yet) and the intervals counted.
  std::vector<uint32_t> last(some ? S * np : 0, 0), active(some ? S * np : 0, 0);
  if (some) {
    PersonOrderScan scan(snap, from_ms, to_ms);
    const auto& blocks = scan.blocks();
    std::vector<FilterSet::BlockEval> evals(blocks.size() * S);  // [block * S + series]
    for (size_t b = 0; b < blocks.size(); b++)
      for (size_t s = 0; s < S; s++) evals[b * S + s] = filters[s].ForBlock(*blocks[b]);
    ScanPersonGroups<uint32_t>(
        scan, pt, QueryThreads(), any ? nullptr : &codes,
        [&](uint32_t b, uint32_t i, uint32_t* person, int64_t* ts_out, uint32_t* tie) {
          const Block& blk = *blocks[b];
          const int64_t ts = blk.ts()[i];
          if (ts < from_ms || ts >= to_ms) return false;
          const uint32_t ev = blk.ev()[i];
          uint32_t mask = 0;
          for (size_t s = 0; s < S; s++) {
            const EventMatcher& m = matchers[s];
            if (m.none || (!m.any && ev != m.code)) continue;
            const FilterSet::BlockEval& e = evals[b * S + s];
            if (e.always_false || (!e.always_true && !e.Match(i))) continue;
            mask |= 1u << s;
          }
          if (!mask) return false;
          *person = pt.PersonOf(blk.did()[i]);
          *ts_out = ts;
          *tie = mask;
          return true;
        },
        [&](int, uint32_t p, int64_t ts, std::vector<uint32_t>& ties) {
          uint32_t mask = 0;
          for (uint32_t t : ties) mask |= t;
          const uint32_t k = static_cast<uint32_t>(std::upper_bound(starts.begin(), starts.end(), ts) - starts.begin());
          for (; mask; mask &= mask - 1) {
            const size_t x = static_cast<size_t>(__builtin_ctz(mask)) * np + p;
            if (last[x] != k) {  // k is the interval's index + 1
              last[x] = k;
              active[x]++;
            }
          }
        },
        ctx.deadline);
  }
  if (ctx.deadline && ctx.deadline->Expired()) return ctx.deadline->ToStatus();
  for (size_t s = 0; s < S; s++) {
    StickinessSeriesResult r;
    r.label = q.series[s].label;
    r.event = q.series[s].event;
    r.persons_by_intervals.assign(buckets.size(), 0);
    if (some)
      for (size_t p = 0; p < np; p++)
        if (const uint32_t n = active[s * np + p]) {
          r.persons_by_intervals[n - 1]++;
          r.persons++;
        }
    out.series.push_back(std::move(r));
  }
  return out;
}

json ToJson(const StickinessResult& r) {
  json series = json::array();
  for (const StickinessSeriesResult& s : r.series) {
    json counts = json::array();
    for (size_t k = 0; k < s.persons_by_intervals.size(); k++)
      counts.push_back({{"intervals", k + 1}, {"persons", s.persons_by_intervals[k]}});
    series.push_back({{"label", s.label}, {"event", s.event}, {"persons", s.persons}, {"counts", std::move(counts)}});
  }
  return json{{"kind", "stickiness"},
              {"timezone", r.timezone},
              {"interval", IntervalName(r.interval)},
              {"date_from", FormatDate(r.date_from)},
              {"date_to", FormatDate(r.date_to)},
              {"intervals", r.intervals},
              {"series", std::move(series)}};
}

ResultTable StickinessTable(const json& r) {
  ResultTable rows;
  std::vector<json> head{"intervals"};
  for (const auto& s : r["series"]) head.push_back(s["label"]);
  rows.push_back(head);
  for (size_t k = 0; k < r["intervals"].get<size_t>(); k++) {
    std::vector<json> row{k + 1};
    for (const auto& s : r["series"]) row.push_back(s["counts"][k]["persons"]);
    rows.push_back(row);
  }
  return rows;
}

}  // namespace

const QueryKind kStickinessKind{"stickiness",
                                {},
                                [](const json& request, const QueryContext& ctx) -> StatusOr<json> {
                                  NS_ASSIGN_OR_RETURN(StickinessQuery q, ParseStickinessQuery(request));
                                  NS_RETURN_IF_ERROR(ctx.BindCohorts(q.filters));
                                  for (auto& s : q.series) NS_RETURN_IF_ERROR(ctx.BindCohorts(s.filters));
                                  NS_ASSIGN_OR_RETURN(StickinessResult r, RunStickiness(q, ctx));
                                  return ToJson(r);
                                },
                                [](const json& request) { return ParseStickinessQuery(request).status(); },
                                StickinessTable};

}  // namespace ns
