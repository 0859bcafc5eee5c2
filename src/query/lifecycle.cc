// Lifecycle (docs/queries.md "lifecycle"): two views of where persons are in their life as
// users, both from each person's activity in time order (the per-person driver).
//
//  - stages: at the end of each bucket's last day D, every person seen by then is in one
//    stage: new (first activity within the last new_days days, D included), active (last
//    activity within active_days), silent (within churn_days) or churned (longer ago).
//  - activity (PostHog's lifecycle chart): per interval, persons active in it for the first
//    time ever (new), active in the previous interval too (returning), active before but not
//    in the previous interval (resurrecting); and persons active in the previous interval
//    but not in this one (dormant, a negative count).
#include <algorithm>
#include <array>

#include "query/json_fields.h"
#include "query/operators.h"
#include "query/person_models.h"
#include "query/person_scan.h"
#include "query/scan.h"

namespace ns {

using nlohmann::json;

StatusOr<LifecycleQuery> ParseLifecycleQuery(const json& j) {
  NS_RETURN_IF_ERROR(
      CheckFields(j, "", {"kind", "mode", "date_from", "date_to", "interval", "event", "filters", "cohort"}));
  LifecycleQuery q;
  NS_ASSIGN_OR_RETURN(std::string mode, GetString(j, "mode", "", false, "stages"));
  if (mode == "stages") {
    q.mode = LifecycleMode::kStages;
  } else if (mode == "activity") {
    q.mode = LifecycleMode::kActivity;
  } else {
    return InvalidArgument("mode: expected stages or activity, got '" + mode + "'", "mode");
  }
  NS_RETURN_IF_ERROR(ParseDateRange(j, &q.from_day, &q.to_day));
  NS_ASSIGN_OR_RETURN(std::string interval, GetString(j, "interval", "", false, "day"));
  auto iv = ParseInterval(interval);
  if (!iv.ok() || *iv == Interval::kHour)
    return InvalidArgument("interval: expected day, week or month, got '" + interval + "'", "interval");
  q.interval = *iv;
  NS_ASSIGN_OR_RETURN(q.event, GetString(j, "event", "", false, "$any"));
  if (q.event.empty()) return InvalidArgument("event: must not be empty", "event");
  NS_ASSIGN_OR_RETURN(q.filters, ParseFilters(j.value("filters", json::array()), "filters"));
  NS_RETURN_IF_ERROR(AppendCohortField(j, &q.filters));
  return q;
}

StatusOr<LifecycleResult> RunLifecycle(const LifecycleQuery& q, const QueryContext& ctx) {
  const StoreSnapshot& snap = ctx.snap;
  const TimeZone& tz = ctx.tz;
  const PeopleSettings& s = ctx.people_settings();
  const PersonTable& pt = *snap.persons;
  const size_t np = pt.size();

  LifecycleResult out;
  out.timezone = tz.name();
  out.mode = q.mode;
  out.interval = q.interval;
  out.date_from = q.from_day;
  out.date_to = q.to_day;
  std::vector<Bucket> buckets = tz.MakeBuckets(q.from_day, q.to_day, q.interval);
  const size_t K = buckets.size();
  std::vector<int32_t> end_day(K);  // last local day of each bucket
  for (size_t k = 0; k < K; k++) {
    out.dates.push_back(buckets[k].label);
    end_day[k] = k + 1 < K ? tz.LocalDay(buckets[k + 1].start_ms) - 1 : q.to_day;
  }

  // Activity before the range matters (first activity, last activity): scan from the start.
  const int64_t scan_to = tz.DayStartMs(q.to_day + 1);
  int64_t min_ts = scan_to;
  for (const auto& b : snap.blocks)
    if (b->size()) min_ts = std::min(min_ts, b->min_ts());
  const int32_t first_day = std::min(tz.LocalDay(min_ts), q.from_day);
  DayIndex days(tz, first_day, q.to_day);

  const EventMatcher m = EventMatcher::Make(q.event, *snap.events);
  const FilterSet filters(q.filters, snap);
  PersonOrderScan scan(snap, INT64_MIN, scan_to);
  const auto& blocks = scan.blocks();
  std::vector<FilterSet::BlockEval> evals(blocks.size());
  for (size_t b = 0; b < blocks.size(); b++) evals[b] = filters.ForBlock(*blocks[b]);
  std::vector<uint32_t> codes;
  if (!m.any && !m.none) codes.push_back(m.code);

  constexpr int32_t kNone = INT32_MIN;
  struct PersonState {
    int32_t first = kNone;  // stages: first active day; activity: first active interval
    int32_t last = kNone;   // last active day / interval
    uint32_t next = 0;      // stages: the next bucket to count the person in
  };
  std::vector<PersonState> ps(m.none ? 0 : np);
  const int slots = QueryThreads();
  // counts[slot][bucket * 4 + series]
  std::vector<std::vector<int64_t>> counts(static_cast<size_t>(slots), std::vector<int64_t>(K * 4, 0));

  auto stage_of = [&](const PersonState& st, int32_t d) {
    if (d - st.first < s.new_days) return 0;
    const int32_t idle = d - st.last;
    return idle < s.active_days ? 1 : idle < s.churn_days ? 2 : 3;
  };
  // Stages: count the person in every bucket that ended before day d.
  auto settle = [&](PersonState& st, int32_t d, std::vector<int64_t>& c) {
    while (st.next < K && end_day[st.next] < d) {
      if (st.first != kNone) c[st.next * 4 + static_cast<size_t>(stage_of(st, end_day[st.next]))]++;
      st.next++;
    }
  };
  auto interval_of = [&](int32_t d) { return TimeZone::PeriodsBetween(q.from_day, d, q.interval); };

  if (!m.none) {
    ScanPersonGroups<char>(
        scan, pt, slots, codes.empty() ? nullptr : &codes,
        [&](uint32_t b, uint32_t i, uint32_t* person, int64_t* ts_out, char* tie) {
          const Block& blk = *blocks[b];
          const int64_t ts = blk.ts()[i];
          if (ts >= scan_to) return false;
          if (!m.any && blk.ev()[i] != m.code) return false;
          const auto& e = evals[b];
          if (e.always_false || (!e.always_true && !e.Match(i))) return false;
          *person = pt.PersonOf(blk.did()[i]);
          *ts_out = ts;
          *tie = 0;
          return true;
        },
        [&](int slot, uint32_t p, int64_t ts, std::vector<char>&) {
          PersonState& st = ps[p];
          auto& c = counts[static_cast<size_t>(slot)];
          const int32_t d = days.Day(ts);
          if (q.mode == LifecycleMode::kStages) {
            settle(st, d, c);
            if (st.first == kNone) st.first = d;
            st.last = d;
            return;
          }
          const int32_t j = interval_of(d);
          if (st.first == kNone) {
            st.first = st.last = j;
            if (j >= 0 && static_cast<size_t>(j) < K) c[static_cast<size_t>(j) * 4 + 0]++;
            return;
          }
          if (j == st.last) return;
          if (j >= 0 && static_cast<size_t>(j) < K) c[static_cast<size_t>(j) * 4 + (st.last == j - 1 ? 1 : 2)]++;
          const int32_t gone = st.last + 1;  // the interval after the last activity
          if (gone >= 0 && gone < j && static_cast<size_t>(gone) < K) c[static_cast<size_t>(gone) * 4 + 3]--;
          st.last = j;
        },
        ctx.deadline);
  }
  if (ctx.deadline && ctx.deadline->Expired()) return ctx.deadline->ToStatus();
  auto& total = counts[0];
  for (size_t sl = 1; sl < counts.size(); sl++)
    for (size_t x = 0; x < total.size(); x++) total[x] += counts[sl][x];
  for (PersonState& st : ps) {
    if (st.first == kNone) continue;
    if (q.mode == LifecycleMode::kStages) {
      settle(st, INT32_MAX, total);
    } else {
      const int32_t gone = st.last + 1;
      if (gone >= 0 && static_cast<size_t>(gone) < K) total[static_cast<size_t>(gone) * 4 + 3]--;
    }
  }
  static const char* kStages[4] = {"new", "active", "silent", "churned"};
  static const char* kActivity[4] = {"new", "returning", "resurrecting", "dormant"};
  for (size_t x = 0; x < 4; x++) {
    std::vector<int64_t> v(K);
    for (size_t k = 0; k < K; k++) v[k] = total[k * 4 + x];
    out.series.emplace_back(q.mode == LifecycleMode::kStages ? kStages[x] : kActivity[x], std::move(v));
  }
  return out;
}

json ToJson(const LifecycleResult& r) {
  json series = json::array();
  for (const auto& [name, values] : r.series) series.push_back({{"stage", name}, {"label", name}, {"values", values}});
  return json{{"kind", "lifecycle"},
              {"mode", r.mode == LifecycleMode::kStages ? "stages" : "activity"},
              {"timezone", r.timezone},
              {"interval", IntervalName(r.interval)},
              {"date_from", FormatDate(r.date_from)},
              {"date_to", FormatDate(r.date_to)},
              {"dates", r.dates},
              {"series", series}};
}

const QueryKind kLifecycleKind{"lifecycle",
                               {},
                               [](const json& request, const QueryContext& ctx) -> StatusOr<json> {
                                 NS_ASSIGN_OR_RETURN(LifecycleQuery q, ParseLifecycleQuery(request));
                                 NS_RETURN_IF_ERROR(ctx.BindCohorts(q.filters));
                                 NS_ASSIGN_OR_RETURN(LifecycleResult r, RunLifecycle(q, ctx));
                                 return ToJson(r);
                               },
                               [](const json& request) { return ParseLifecycleQuery(request).status(); },
                               [](const json& r) {
                                 ResultTable rows;
                                 std::vector<json> head{"date"};
                                 for (const auto& s : r["series"]) head.push_back(s["stage"]);
                                 rows.push_back(head);
                                 for (size_t k = 0; k < r["dates"].size(); k++) {
                                   std::vector<json> row{r["dates"][k]};
                                   for (const auto& s : r["series"]) row.push_back(s["values"][k]);
                                   rows.push_back(row);
                                 }
                                 return rows;
                               }};

}  // namespace ns
