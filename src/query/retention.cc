// Retention. Semantics (docs/queries.md §Retention):
// - first_time = true: a person's cohort is the period of their first-ever start event,
//   if that event's local day lies in [date_from, date_to]. first_time = false: every
//   period of [date_from, date_to] in which the person did the start event is a cohort.
// - values[k] counts cohort persons with a return event in period cohort + k. For k = 0 the
//   return must be a different occurrence than the anchoring (first in the period) start
//   event, at or after it. mode = on_or_after: returned in period k or any later one
//   (within the requested periods).
// - Events of a person are ordered by (ts, start events first, tag) at equal timestamps.
// - Breakdown: the property value on the anchoring start event (or the person property).
// - min_occurrences = N: period k counts only with at least N return events in it (after the
//   anchor). time_window = 24h: period k is [anchor + k W, anchor + (k+1) W), W = 24 h
//   (7 x 24 h for weeks); the cohort stays the anchor's calendar period.
// - percentages against the cohort size (reference total) or the previous period's value
//   (previous); mean[k]: percentages weighted by cohort size over the cohorts whose period
//   k has begun by q.today.
//
// first_time with calendar periods and min_occurrences 1 (the common case) is one streaming
// pass in per-person time order with per-person state in dense arrays, parallel over person
// ranges; recurring cohorts, 24h windows and min_occurrences > 1 use per-person timelines.
#include <algorithm>
#include <map>

#include "query/operators.h"
#include "query/person_scan.h"
#include "query/scan.h"

namespace ns {

using nlohmann::json;

namespace {

int32_t NextPeriod(int32_t period_start, Interval period) {
  return period == Interval::kDay    ? period_start + 1
         : period == Interval::kWeek ? period_start + 7
                                     : TimeZone::PeriodStartDay(period_start + 31, Interval::kMonth);
}

// Fills the cohorts' percentages and the weighted mean (RunRetention's last step).
void AddRetentionPercentages(const RetentionQuery& q, RetentionResult& out);

}  // namespace

StatusOr<RetentionResult> RunRetention(const RetentionQuery& q, const StoreSnapshot& snap, const TimeZone& tz,
                                       const Deadline* deadline) {
  const int32_t first_period_day = TimeZone::PeriodStartDay(q.from_day, q.period);
  // Last day any counted return can fall on: end of the last cohort's last period.
  int32_t last_day = TimeZone::PeriodStartDay(q.to_day, q.period);
  for (int k = 0; k < q.periods; k++) last_day = NextPeriod(last_day, q.period);
  const int64_t range_from = tz.DayStartMs(q.from_day), range_to = tz.DayStartMs(q.to_day + 1);
  const bool windows = q.time_window == RetentionWindow::k24h;
  const int64_t window_ms = q.period == Interval::kWeek ? 7 * kMsPerDay : kMsPerDay;
  // 24h windows: the last anchor is just before range_to; its last window ends P windows later.
  const int64_t scan_to =
      windows ? std::max(tz.DayStartMs(last_day), range_to + q.periods * window_ms) : tz.DayStartMs(last_day);
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

  // Per-block state for tagging rows (bit 0 start, bit 1 return).
  struct BlockState {
    bool may_start = false, may_ret = false;
    FilterSet::BlockEval se, re;
    BlockGroups groups;
    const uint32_t* ev = nullptr;
    const uint32_t* did = nullptr;
    const int64_t* ts = nullptr;
    int32_t day_const = INT32_MIN;  // every row on this local day, or INT32_MIN
  };
  auto prepare = [&](const Block& b, BlockState& st) {
    st.may_start = start_m.MayMatch(b);
    st.may_ret = ret_m.MayMatch(b);
    if (!st.may_start && !st.may_ret) return;
    st.se = start_f.ForBlock(b);
    st.re = ret_f.ForBlock(b);
    if (breakdown.active() && st.may_start) breakdown.ResolveBlock(b, &st.groups);
    st.ev = b.ev().data();
    st.did = b.did().data();
    st.ts = b.ts().data();
    if (days.Day(b.min_ts()) == days.Day(b.max_ts())) st.day_const = days.Day(b.min_ts());
  };
  auto tag_of = [&](const BlockState& st, size_t i) -> uint64_t {
    uint64_t t = 0;
    const uint32_t e = st.ev[i];
    if (st.may_start && (start_m.any || e == start_m.code) && !st.se.always_false &&
        (st.se.always_true || st.se.Match(i)))
      t |= 1;
    if (st.may_ret && (ret_m.any || e == ret_m.code) && !st.re.always_false && (st.re.always_true || st.re.Match(i)))
      t |= 2;
    return t;
  };

  const int P = q.periods;
  struct Cohort {
    uint64_t size = 0;
    std::vector<uint64_t> values;
  };
  std::map<std::pair<int32_t, uint32_t>, Cohort> cohorts;  // (period start day, group)
  auto add_member = [&](int32_t cohort_day, uint32_t group, auto&& returned_at) {
    Cohort& c = cohorts[{cohort_day, group}];
    if (c.values.empty()) c.values.assign(static_cast<size_t>(P), 0);
    c.size++;
    if (q.mode == RetentionMode::kExact) {
      for (int k = 0; k < P; k++) c.values[static_cast<size_t>(k)] += returned_at(k) ? 1 : 0;
    } else {
      int last = -1;
      for (int k = 0; k < P; k++)
        if (returned_at(k)) last = k;
      for (int k = 0; k <= last; k++) c.values[static_cast<size_t>(k)]++;
    }
  };

  const bool streaming = q.first_time && !windows && q.min_occurrences == 1;
  if (streaming) {
    const PersonTable& pt = *snap.persons;
    const size_t np = pt.size();
    PersonOrderScan scan(snap, scan_from, scan_to);
    const auto& blocks = scan.blocks();
    std::vector<BlockState> states(blocks.size());
    for (size_t b = 0; b < blocks.size(); b++) prepare(*blocks[b], states[b]);
    const size_t words = (static_cast<size_t>(P) + 63) / 64;
    enum : uint8_t { kNone = 0, kAnchored = 1, kOut = 2 };
    // One record per person (a cache line holds two or three); return bits of periods 64+
    // live in `more`.
    struct PersonState {
      uint64_t bits0 = 0;  // returned in periods 0..63
      int32_t cohort = 0;
      uint32_t group = 0;
    };
    std::vector<PersonState> ps(np);
    // Status is checked on every row: a byte array stays in cache.
    std::vector<uint8_t> status(np, kNone);
    std::vector<uint64_t> more(words > 1 ? np * (words - 1) : 0, 0);
    auto set_returned = [&](uint32_t p, int k) {
      if (k < 64)
        ps[p].bits0 |= 1ULL << k;
      else
        more[p * (words - 1) + static_cast<size_t>(k / 64 - 1)] |= 1ULL << (k % 64);
    };
    auto returned_at = [&](uint32_t p, int k) -> bool {
      if (k < 64) return (ps[p].bits0 >> k) & 1;
      return (more[p * (words - 1) + static_cast<size_t>(k / 64 - 1)] >> (k % 64)) & 1;
    };
    std::vector<uint32_t> needed_codes;
    if (!start_m.none) needed_codes.push_back(start_m.code);
    if (!ret_m.none && ret_m.code != start_m.code) needed_codes.push_back(ret_m.code);
    std::sort(needed_codes.begin(), needed_codes.end());
    const std::vector<uint32_t>* codes = (start_m.any || ret_m.any) ? nullptr : &needed_codes;
    struct Tie {
      uint64_t tag;
      int32_t day;
      uint32_t aux;
      int64_t ts;
    };
    const bool fast = SequenceScanTuning().fast_paths;
    auto apply = [&](uint32_t p, const Tie& t) {
      PersonState& st = ps[p];
      if ((t.tag & 1) && status[p] == kNone) {
        if (t.ts >= range_from && t.ts < range_to) {
          status[p] = kAnchored;
          st.cohort = TimeZone::PeriodStartDay(t.day, q.period);
          st.group = t.aux;
          return;  // the anchoring occurrence is not its own return
        }
        status[p] = kOut;  // first start event outside the cohort range
      }
      if ((t.tag & 2) && status[p] == kAnchored) {
        int k = TimeZone::PeriodsBetween(st.cohort, t.day, q.period);
        if (k >= 0 && k < P) set_returned(p, k);
      }
    };
    ScanPersonGroups<Tie>(
        scan, pt, QueryThreads(), codes,
        [&](uint32_t b, uint32_t i, uint32_t* person, int64_t* ts_out, Tie* tie) {
          const BlockState& st = states[b];
          if (!st.ev) return false;
          const int64_t ts = st.ts[i];
          if (ts >= scan_to) return false;
          const uint32_t p = pt.PersonOf(st.did[i]);
          const uint8_t status_p = status[p];
          if (status_p == kOut) return false;
          const int32_t day = st.day_const != INT32_MIN ? st.day_const : days.Day(ts);
          if (status_p == kAnchored && fast) {
            // Fast path: for an anchored person a row can only mark its period returned,
            // which is the same in any order and however often, so it is applied here
            // without grouping ties (apply() would do the same); a period already marked
            // (most rows of a returning person's day) costs no tag.
            const int k =
                q.period == Interval::kDay ? day - ps[p].cohort : TimeZone::PeriodsBetween(ps[p].cohort, day, q.period);
            if (k >= 0 && k < P && !returned_at(p, k) && (tag_of(st, i) & 2)) set_returned(p, k);
            return false;
          }
          const uint64_t tag = tag_of(st, i);
          if (!tag) return false;
          *person = p;
          *ts_out = ts;
          *tie = {tag, day, (tag & 1) && breakdown.active() ? st.groups[i] : 0u, ts};
          return true;
        },
        [&](int, uint32_t p, int64_t, std::vector<Tie>& ties) {
          if (ties.size() > 1)
            std::sort(ties.begin(), ties.end(), [](const Tie& a, const Tie& b) {
              uint32_t oa = (a.tag & 1) ? 0 : 64, ob = (b.tag & 1) ? 0 : 64;
              return oa != ob ? oa < ob : a.tag < b.tag;
            });
          for (const Tie& t : ties) apply(p, t);
        },
        deadline);
    for (uint32_t p = 0; p < np; p++) {
      if (status[p] != kAnchored) continue;
      add_member(ps[p].cohort, ps[p].group, [&](int k) { return returned_at(p, k); });
    }
  } else {
    RowClassifier classify = [&](const Block& b, std::vector<uint64_t>* tags, std::vector<uint32_t>* aux) {
      BlockState st;
      prepare(b, st);
      if (!st.ev) return;
      for (size_t i = 0; i < b.size(); i++) {
        (*tags)[i] = tag_of(st, i);
        if (((*tags)[i] & 1) && breakdown.active()) (*aux)[i] = st.groups[i];
      }
    };
    // Start events first at equal timestamps, so "after the start event" includes ties.
    Timelines tl = BuildTimelines(snap, scan_from, scan_to, classify, /*order_mask=*/1, deadline);
    std::vector<uint32_t> hits(static_cast<size_t>(P));  // return events per period
    std::vector<size_t> anchors;
    for (size_t pi = 0; pi < tl.persons.size(); pi++) {
      const TimelineEntry* e = tl.entries.data() + tl.offsets[pi];
      const size_t cnt = tl.offsets[pi + 1] - tl.offsets[pi];
      auto in_range = [&](size_t i) { return e[i].ts >= range_from && e[i].ts < range_to; };
      // Anchors: first_time: the first-ever start event, if in range; recurring: the first
      // start event of each cohort period in range.
      anchors.clear();
      for (size_t i = 0; i < cnt; i++) {
        if (!(e[i].tag & 1)) continue;
        if (q.first_time) {
          if (in_range(i)) anchors.push_back(i);
          break;
        }
        if (!in_range(i)) continue;
        int32_t p = TimeZone::PeriodStartDay(days.Day(e[i].ts), q.period);
        if (anchors.empty() || TimeZone::PeriodStartDay(days.Day(e[anchors.back()].ts), q.period) != p)
          anchors.push_back(i);
      }
      for (size_t a : anchors) {
        const int32_t cohort_day = TimeZone::PeriodStartDay(days.Day(e[a].ts), q.period);
        std::fill(hits.begin(), hits.end(), 0);
        for (size_t j = a + 1; j < cnt; j++) {  // timeline order: at or after the anchor, other occurrences
          if (!(e[j].tag & 2)) continue;
          int64_t k = windows ? (e[j].ts - e[a].ts) / window_ms
                              : TimeZone::PeriodsBetween(cohort_day, days.Day(e[j].ts), q.period);
          if (k >= P) break;  // timelines are in time order: every later return is later still
          if (k >= 0) hits[static_cast<size_t>(k)]++;
        }
        add_member(cohort_day, e[a].aux,
                   [&](int k) { return hits[static_cast<size_t>(k)] >= static_cast<uint32_t>(q.min_occurrences); });
      }
    }
  }

  if (deadline && deadline->fired()) return deadline->ToStatus();
  RetentionResult out;
  out.timezone = tz.name();
  out.period = q.period;
  out.periods = P;
  out.mode = q.mode;
  out.first_time = q.first_time;
  out.date_from = q.from_day;
  out.date_to = q.to_day;
  out.reference = q.reference;
  out.min_occurrences = q.min_occurrences;
  out.time_window = q.time_window;
  // Every cohort period of the range appears (size 0 if empty) when there is no breakdown.
  if (!breakdown.active()) {
    for (int32_t d = first_period_day; d <= q.to_day; d = NextPeriod(d, q.period)) {
      auto& c = cohorts[{d, 0}];
      if (c.values.empty()) c.values.assign(static_cast<size_t>(P), 0);
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
    RetentionCohortResult cr;
    cr.day = key.first;
    if (breakdown.active()) cr.breakdown_value = breakdown.Value(key.second);
    cr.size = c.size;
    cr.values = std::move(c.values);
    out.cohorts.push_back(std::move(cr));
  }
  AddRetentionPercentages(q, out);
  return out;
}

namespace {

void AddRetentionPercentages(const RetentionQuery& q, RetentionResult& out) {
  const size_t P = static_cast<size_t>(q.periods);
  std::vector<double> weighted(P, 0.0);
  out.mean_weights.assign(P, 0);
  for (RetentionCohortResult& c : out.cohorts) {
    c.percentages.assign(P, std::nullopt);
    int32_t period_start = c.day;  // of period k
    for (size_t k = 0; k < P; k++, period_start = NextPeriod(period_start, q.period)) {
      const uint64_t den = k == 0 || q.reference == RetentionReference::kTotal ? c.size : c.values[k - 1];
      if (den == 0) continue;
      const double pct = static_cast<double>(c.values[k]) / static_cast<double>(den);
      c.percentages[k] = pct;
      if (period_start > q.today) continue;  // not begun yet: its 0 is not a measurement
      weighted[k] += pct * static_cast<double>(c.size);
      out.mean_weights[k] += c.size;
    }
  }
  out.mean.assign(P, std::nullopt);
  for (size_t k = 0; k < P; k++)
    if (out.mean_weights[k] > 0) out.mean[k] = weighted[k] / static_cast<double>(out.mean_weights[k]);
}

}  // namespace

// ---------------------------------------------------------------- registration

const QueryKind kRetentionKind{
    "retention",
    {},
    [](const json& request, const QueryContext& ctx) -> StatusOr<json> {
      NS_ASSIGN_OR_RETURN(RetentionQuery q, ParseRetentionQuery(request));
      q.today = ctx.tz.LocalDay(NowMs());
      for (auto* fs : {&q.filters, &q.start_filters, &q.return_filters}) NS_RETURN_IF_ERROR(ctx.BindCohorts(*fs));
      NS_ASSIGN_OR_RETURN(RetentionResult r, RunRetention(q, ctx.snap, ctx.tz, ctx.deadline));
      return ToJson(r);
    },
    [](const json& request) { return ParseRetentionQuery(request).status(); },
    [](const json& r) {
      ResultTable rows;
      std::vector<json> head{"cohort", "size"};
      int periods = r.value("periods", 0);
      for (int k = 0; k < periods; k++) head.push_back(std::to_string(k));
      rows.push_back(head);
      for (const auto& c : r["cohorts"]) {
        std::string cohort = c["date"].get<std::string>();
        if (c.contains("breakdown_value"))
          cohort += " " + (c["breakdown_value"].is_null()     ? std::string("-")
                           : c["breakdown_value"].is_string() ? c["breakdown_value"].get<std::string>()
                                                              : c["breakdown_value"].dump());
        std::vector<json> row{cohort, c["size"]};
        for (const auto& v : c["values"]) row.push_back(v);
        rows.push_back(row);
      }
      return rows;
    }};

}  // namespace ns
