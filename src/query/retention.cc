// Retention. Semantics (docs/queries.md §Retention):
// - first_time = true: a person's cohort is the period of their first-ever start event,
//   if that event's local day lies in [date_from, date_to]. first_time = false: every
//   period of [date_from, date_to] in which the person did the start event is a cohort.
// - values[k] counts cohort persons with a return event in period cohort + k. For k = 0 the
//   return must be a different occurrence than the anchoring (first in the period) start
//   event, at or after it. mode = on_or_after: returned in period k or any later one
//   (within the requested periods).
// - Breakdown: the property value on the anchoring start event (or the person property).
#include <algorithm>
#include <map>

#include "query/operators.h"
#include "query/scan.h"

namespace ns {

using nlohmann::json;

StatusOr<json> RunRetention(const RetentionQuery& q, const StoreSnapshot& snap, const TimeZone& tz) {
  const int32_t first_period_day = TimeZone::PeriodStartDay(q.from_day, q.period);
  // Last day any counted return can fall on: end of the last cohort's last period.
  int32_t last_day = TimeZone::PeriodStartDay(q.to_day, q.period);
  for (int k = 0; k < q.periods; k++) {
    last_day = q.period == Interval::kDay ? last_day + 1
               : q.period == Interval::kWeek ? last_day + 7
               : TimeZone::PeriodStartDay(last_day + 31, Interval::kMonth);
  }
  const int64_t scan_to = tz.DayStartMs(last_day);
  const int64_t range_from = tz.DayStartMs(q.from_day), range_to = tz.DayStartMs(q.to_day + 1);
  // first_time needs history before date_from to know whether a start event is the first.
  const int64_t scan_from = q.first_time ? INT64_MIN : range_from;
  DayIndex days(tz, first_period_day, last_day);

  EventMatcher start_m = EventMatcher::Make(q.start_event, *snap.events);
  EventMatcher ret_m = EventMatcher::Make(q.return_event, *snap.events);
  std::vector<Filter> sf = q.filters, rf = q.filters;
  sf.insert(sf.end(), q.start_filters.begin(), q.start_filters.end());
  rf.insert(rf.end(), q.return_filters.begin(), q.return_filters.end());
  FilterSet start_f(sf, snap), ret_f(rf, snap);
  BreakdownResolver breakdown(q.breakdown ? std::vector<PropertyRef>{*q.breakdown} : std::vector<PropertyRef>{}, snap);
  std::vector<uint32_t> groups;

  RowClassifier classify = [&](const Block& b, std::vector<uint64_t>* tags, std::vector<uint32_t>* aux) {
    bool may_start = start_m.MayMatch(b), may_ret = ret_m.MayMatch(b);
    if (!may_start && !may_ret) return;
    auto se = start_f.ForBlock(b);
    auto re = ret_f.ForBlock(b);
    const auto& ev = b.ev();
    bool any_start = false;
    for (size_t i = 0; i < b.size(); i++) {
      uint64_t t = 0;
      if (may_start && (start_m.any || ev[i] == start_m.code) && !se.always_false && (se.always_true || se.Match(i))) t |= 1;
      if (may_ret && (ret_m.any || ev[i] == ret_m.code) && !re.always_false && (re.always_true || re.Match(i))) t |= 2;
      (*tags)[i] = t;
      any_start |= (t & 1) != 0;
    }
    if (breakdown.active() && any_start) {
      breakdown.Resolve(b, &groups);
      for (size_t i = 0; i < b.size(); i++)
        if ((*tags)[i] & 1) (*aux)[i] = groups[i];
    }
  };
  // Start events first at equal timestamps, so "after the start event" includes ties.
  Timelines tl = BuildTimelines(snap, scan_from, scan_to, classify, /*order_mask=*/1);

  const int P = q.periods;
  struct Cohort { uint64_t size = 0; std::vector<uint64_t> values; };
  std::map<std::pair<int32_t, uint32_t>, Cohort> cohorts;  // (period start day, group)
  std::vector<uint8_t> returned(static_cast<size_t>(P));
  for (size_t pi = 0; pi < tl.persons.size(); pi++) {
    const TimelineEntry* e = tl.entries.data() + tl.offsets[pi];
    const size_t cnt = tl.offsets[pi + 1] - tl.offsets[pi];
    // Anchors: index of the first start event of each cohort period.
    std::vector<size_t> anchors;
    for (size_t i = 0; i < cnt; i++) {
      if (!(e[i].tag & 1)) continue;
      if (q.first_time) {
        if (e[i].ts >= range_from && e[i].ts < range_to) anchors.push_back(i);
        break;  // only the first-ever start event can anchor
      }
      if (e[i].ts < range_from || e[i].ts >= range_to) continue;
      int32_t p = TimeZone::PeriodStartDay(days.Day(e[i].ts), q.period);
      if (anchors.empty() || TimeZone::PeriodStartDay(days.Day(e[anchors.back()].ts), q.period) != p) anchors.push_back(i);
    }
    for (size_t a : anchors) {
      const int32_t cohort_day = TimeZone::PeriodStartDay(days.Day(e[a].ts), q.period);
      std::fill(returned.begin(), returned.end(), 0);
      for (size_t j = a + 1; j < cnt; j++) {  // timeline order: at or after the anchor, other occurrences
        if (!(e[j].tag & 2)) continue;
        int k = TimeZone::PeriodsBetween(cohort_day, days.Day(e[j].ts), q.period);
        if (k >= 0 && k < P) returned[static_cast<size_t>(k)] = 1;
      }
      Cohort& c = cohorts[{cohort_day, e[a].aux}];
      if (c.values.empty()) c.values.assign(static_cast<size_t>(P), 0);
      c.size++;
      if (q.mode == RetentionMode::kExact) {
        for (int k = 0; k < P; k++) c.values[static_cast<size_t>(k)] += returned[static_cast<size_t>(k)];
      } else {
        int last = -1;
        for (int k = 0; k < P; k++)
          if (returned[static_cast<size_t>(k)]) last = k;
        for (int k = 0; k <= last; k++) c.values[static_cast<size_t>(k)]++;
      }
    }
  }
  json out;
  out["kind"] = "retention";
  out["timezone"] = tz.name();
  out["period"] = std::string(IntervalName(q.period));
  out["periods"] = P;
  out["mode"] = q.mode == RetentionMode::kExact ? "exact" : "on_or_after";
  out["date_from"] = FormatDate(q.from_day);
  out["date_to"] = FormatDate(q.to_day);
  json list = json::array();
  // Every cohort period of the range appears (size 0 if empty) when there is no breakdown.
  if (!breakdown.active()) {
    for (int32_t d = first_period_day; d <= q.to_day;) {
      auto& c = cohorts[{d, 0}];
      if (c.values.empty()) c.values.assign(static_cast<size_t>(P), 0);
      d = q.period == Interval::kDay ? d + 1 : q.period == Interval::kWeek ? d + 7 : TimeZone::PeriodStartDay(d + 31, Interval::kMonth);
    }
  }
  std::map<uint32_t, uint64_t> group_size;
  for (auto& [key, c] : cohorts) group_size[key.second] += c.size;
  std::vector<std::pair<uint64_t, uint32_t>> top;
  for (auto& [g, s] : group_size) top.push_back({s, g});
  std::stable_sort(top.begin(), top.end(), [](auto& a, auto& b) { return a.first > b.first; });
  std::map<uint32_t, bool> keep;
  for (size_t i = 0; i < top.size() && i < q.breakdown_limit; i++) keep[top[i].second] = true;
  for (auto& [key, c] : cohorts) {
    if (!keep.count(key.second)) continue;
    json cj;
    cj["date"] = FormatDate(key.first);
    if (breakdown.active()) cj["breakdown_value"] = breakdown.Value(key.second);
    cj["size"] = c.size;
    cj["values"] = c.values;
    list.push_back(std::move(cj));
  }
  out["cohorts"] = std::move(list);
  return out;
}

}  // namespace ns
