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
// first_time with min_occurrences 1 (the common case, calendar periods or 24h windows) is one
// streaming pass in per-person time order with per-person state in dense arrays, parallel
// over person ranges; without filters or breakdown it is a dedicated tighter pass
// (RunPlainRetention, below). Recurring cohorts and min_occurrences > 1 use per-person
// timelines, and so do 24h windows in the plain scan the tests compare the stream with; the
// timelines are built a tile of persons at a time, in parallel over person ranges.
#include <algorithm>
#include <map>
#include <optional>
#include <type_traits>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "query/operators.h"
#include "query/part_rows.h"
#include "query/person_scan.h"
#include "query/scan.h"
#include "query/tile_timelines.h"

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

struct Cohort {
  uint64_t size = 0;
  std::vector<uint64_t> values;
};
using CohortMap = std::map<std::pair<int32_t, uint32_t>, Cohort>;  // (period start day, group)

// What RunRetention computed once for both streaming passes.
struct RetentionScanRange {
  int64_t range_from, range_to;  // instants of [date_from, date_to]
  int64_t scan_to;               // no counted return at or after it
  int64_t window_ms;             // 24h windows: one window; 0 for calendar periods
};

// The plain question (first_time, no filters, no breakdown, min_occurrences 1, at most 64
// periods; calendar periods or 24h windows) has a dedicated pass, RunPlainRetention.
bool PlainRetentionApplies(const RetentionQuery& q) {
  return q.first_time && q.min_occurrences == 1 && q.filters.empty() && q.start_filters.empty() &&
         q.return_filters.empty() && !q.breakdown && q.periods <= 64 && SequenceScanTuning().fast_paths;
}
void RunPlainRetention(const RetentionQuery& q, const StoreSnapshot& snap, const TimeZone& tz, const DayIndex& days,
                       const EventMatcher& start_m, const EventMatcher& ret_m, const RetentionScanRange& r,
                       const Deadline* deadline, CohortMap* cohorts);

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
  CohortMap cohorts;
  auto add_member_to = [&](CohortMap& into, int32_t cohort_day, uint32_t group, auto&& returned_at) {
    Cohort& c = into[{cohort_day, group}];
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
  auto add_member = [&](int32_t cohort_day, uint32_t group, auto&& returned_at) {
    add_member_to(cohorts, cohort_day, group, returned_at);
  };

  const RetentionScanRange scan_range{range_from, range_to, scan_to, windows ? window_ms : 0};
  const bool fast = SequenceScanTuning().fast_paths;
  // first_time with min_occurrences 1 streams; with 24h windows only on the fast paths (the
  // plain scan keeps the timelines, which tests compare the stream with).
  const bool streaming = q.first_time && q.min_occurrences == 1 && (!windows || fast);
  // The event codes the per-person scans visit (all rows when either event is "$any").
  std::vector<uint32_t> needed_codes;
  if (!start_m.none) needed_codes.push_back(start_m.code);
  if (!ret_m.none && ret_m.code != start_m.code) needed_codes.push_back(ret_m.code);
  std::sort(needed_codes.begin(), needed_codes.end());
  const std::vector<uint32_t>* codes = (start_m.any || ret_m.any) ? nullptr : &needed_codes;
  // The per-person passes below: each block's tagging state.
  auto person_scan_states = [&](const PersonOrderScan& scan) {
    std::vector<BlockState> states(scan.blocks().size());
    for (size_t b = 0; b < states.size(); b++) prepare(*scan.blocks()[b], states[b]);
    return states;
  };
  if (streaming && PlainRetentionApplies(q)) {
    RunPlainRetention(q, snap, tz, days, start_m, ret_m, scan_range, deadline, &cohorts);
  } else if (streaming) {
    const PersonTable& pt = *snap.persons;
    const size_t np = pt.size();
    PersonOrderScan scan(snap, scan_from, scan_to);
    const std::vector<BlockState> states = person_scan_states(scan);
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
    std::vector<int64_t> anchor_ts(windows ? np : 0);  // 24h windows count from the anchor
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
    struct Tie {
      uint64_t tag;
      int32_t day;
      uint32_t aux;
      int64_t ts;
    };
    // Period of a return at `ts` (local day `day`) of anchored person p.
    auto period_of = [&](uint32_t p, int64_t ts, int32_t day) -> int64_t {
      if (windows) return (ts - anchor_ts[p]) / window_ms;  // ts >= the anchor: rows come in time order
      return q.period == Interval::kDay ? day - ps[p].cohort : TimeZone::PeriodsBetween(ps[p].cohort, day, q.period);
    };
    auto apply = [&](uint32_t p, const Tie& t) {
      PersonState& st = ps[p];
      if ((t.tag & 1) && status[p] == kNone) {
        if (t.ts >= range_from && t.ts < range_to) {
          status[p] = kAnchored;
          st.cohort = TimeZone::PeriodStartDay(t.day, q.period);
          st.group = t.aux;
          if (windows) anchor_ts[p] = t.ts;
          return;  // the anchoring occurrence is not its own return
        }
        status[p] = kOut;  // first start event outside the cohort range
      }
      if ((t.tag & 2) && status[p] == kAnchored) {
        const int64_t k = period_of(p, t.ts, t.day);
        if (k >= 0 && k < P) set_returned(p, static_cast<int>(k));
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
            const int64_t k = period_of(p, ts, day);
            if (k >= 0 && k < P && !returned_at(p, static_cast<int>(k)) && (tag_of(st, i) & 2))
              set_returned(p, static_cast<int>(k));
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
    // Recurring cohorts, min_occurrences > 1 (and the plain scan of 24h windows): each
    // person's tagged rows as a timeline, a tile of persons at a time on the query threads
    // (tile_timelines.h), not every tagged row of the range at once (that took 3.9 GB for
    // weekly `$any` returns on dataset M).
    const PersonTable& pt = *snap.persons;
    PersonOrderScan scan(snap, scan_from, scan_to);
    const std::vector<BlockState> states = person_scan_states(scan);
    struct SlotState {
      std::vector<uint32_t> hits;  // return events per period
      std::vector<size_t> anchors;
      CohortMap cohorts;
    };
    const int slots = QueryThreads();
    std::vector<SlotState> slot_state(static_cast<size_t>(slots));
    // One person's timeline: its anchors, then their returns.
    auto count_person = [&](SlotState& ss, const TimelineEntry* e, size_t cnt) {
      auto in_range = [&](size_t i) { return e[i].ts >= range_from && e[i].ts < range_to; };
      // Anchors: first_time: the first-ever start event, if in range; recurring: the first
      // start event of each cohort period in range.
      ss.anchors.clear();
      for (size_t i = 0; i < cnt; i++) {
        if (!(e[i].tag & 1)) continue;
        if (q.first_time) {
          if (in_range(i)) ss.anchors.push_back(i);
          break;
        }
        if (!in_range(i)) continue;
        int32_t p = TimeZone::PeriodStartDay(days.Day(e[i].ts), q.period);
        if (ss.anchors.empty() || TimeZone::PeriodStartDay(days.Day(e[ss.anchors.back()].ts), q.period) != p)
          ss.anchors.push_back(i);
      }
      for (size_t a : ss.anchors) {
        const int32_t cohort_day = TimeZone::PeriodStartDay(days.Day(e[a].ts), q.period);
        ss.hits.assign(static_cast<size_t>(P), 0);
        for (size_t j = a + 1; j < cnt; j++) {  // timeline order: at or after the anchor, other occurrences
          if (!(e[j].tag & 2)) continue;
          int64_t k = windows ? (e[j].ts - e[a].ts) / window_ms
                              : TimeZone::PeriodsBetween(cohort_day, days.Day(e[j].ts), q.period);
          if (k >= P) break;  // timelines are in time order: every later return is later still
          if (k >= 0) ss.hits[static_cast<size_t>(k)]++;
        }
        add_member_to(ss.cohorts, cohort_day, e[a].aux, [&](int k) {
          return ss.hits[static_cast<size_t>(k)] >= static_cast<uint32_t>(q.min_occurrences);
        });
      }
    };
    ScanTimelines(
        scan, pt, slots, codes,
        [&](uint32_t b, uint32_t i, uint32_t* person, TimelineEntry* e) {
          const BlockState& st = states[b];
          if (!st.ev) return false;
          const int64_t ts = st.ts[i];
          if (ts < scan_from || ts >= scan_to) return false;
          const uint64_t tag = tag_of(st, i);
          if (!tag) return false;
          *person = pt.PersonOf(st.did[i]);
          const uint32_t aux = (tag & 1) && breakdown.active() ? st.groups[i] : 0u;
          *e = {ts, tag, aux, (tag & 1) ? 0u : 64u};  // order: start events first
          return true;
        },
        [&](int slot, uint32_t, const TimelineEntry* e, size_t cnt) {
          count_person(slot_state[static_cast<size_t>(slot)], e, cnt);
        },
        deadline);
    for (SlotState& ss : slot_state)
      for (auto& [key, c] : ss.cohorts) {
        Cohort& into = cohorts[key];
        if (into.values.empty()) into.values.assign(static_cast<size_t>(P), 0);
        into.size += c.size;
        for (size_t k = 0; k < c.values.size(); k++) into.values[k] += c.values[k];
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

// ---------------------------------------------------------------- the plain pass
//
// Why it is fast: it reads only the event, timestamp and id columns, and takes a part's rows
// a person's run at a time (a part is sorted by person, then time), so a person's state is
// looked up once per run (a day of the person), not once per row. A run of a person not yet
// anchored only looks for the start event; an anchored person's run of `$any` returns spans
// at most two consecutive periods (a part is one UTC day), read off its first and last row,
// or off no row at all when the whole part is on one local day (a UTC project).
// Local days come from the part's day boundaries (no per-row time-zone math). Per-person
// state lives for one tile of persons (ScanPersonGroups' tiles) and is counted into the
// thread's cohort totals when the tile is done, so memory does not grow with the project;
// except in a scan over the memory budget (ScanRetirer), which walks the thread's whole
// range as one tile, day by day, to free each day's columns once passed.

// First position from `e` on (before `last`) whose id differs from `did`. A whole block's
// ids are compared four at a time: most of the pass is finding where a person's run ends.
size_t SameIdEnd(const WholeBlockRows& rows, size_t e, size_t last, uint32_t did) {
#ifdef __SSE2__
  const __m128i want = _mm_set1_epi32(static_cast<int>(did));
  for (; e + 4 <= last; e += 4) {
    const __m128i ids = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows.c.did + e));
    const int same = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(ids, want)));
    if (same != 0xF) return e + static_cast<size_t>(__builtin_ctz(~same & 0xF));
  }
#endif
  while (e < last && rows.c.did[e] == did) e++;
  return e;
}
size_t SameIdEnd(const ListedRows& rows, size_t e, size_t last, uint32_t did) {
  while (e < last && rows.Did(e) == did) e++;
  return e;
}

// Local days of a part: its rows lie in one UTC day [U, U + 1 day), which meets local day
// day0 and (from next1 on) day0 + 1; a day shorter than 24 h can put a third one after next2.
struct PartDays {
  int32_t day0 = 0;
  int64_t next1 = INT64_MAX, next2 = INT64_MAX;
  bool one_day = false;  // every row is on day0 (a UTC project, or a block before local midnight)
};

void RunPlainRetention(const RetentionQuery& q, const StoreSnapshot& snap, const TimeZone& tz, const DayIndex& days,
                       const EventMatcher& start_m, const EventMatcher& ret_m, const RetentionScanRange& r,
                       const Deadline* deadline, CohortMap* cohorts) {
  const int P = q.periods;
  const bool windows = r.window_ms > 0;
  // Cohort index of each period start day of the range.
  const int32_t first_period_day = TimeZone::PeriodStartDay(q.from_day, q.period);
  if (q.to_day < q.from_day) return;  // no cohort (the parser refuses such a range)
  std::vector<int32_t> cohort_days;
  std::vector<uint32_t> cohort_of_day(static_cast<size_t>(q.to_day - first_period_day + 1));
  for (int32_t d = first_period_day; d <= q.to_day; d++) {
    if (cohort_days.empty() || TimeZone::PeriodStartDay(d, q.period) != cohort_days.back()) cohort_days.push_back(d);
    cohort_of_day[static_cast<size_t>(d - first_period_day)] = static_cast<uint32_t>(cohort_days.size() - 1);
  }
  if (start_m.none) return;  // nobody is anchored

  const PersonTable& pt = *snap.persons;
  PersonOrderScan scan(snap, INT64_MIN, r.scan_to);  // first_time: the whole history before the range
  const auto& blocks = scan.blocks();
  const auto& parts = scan.parts();
  // Over the memory budget, blocks are freed as the scan passes them (ScanRetirer) and each
  // thread takes a block's columns when it reaches its part; otherwise all are taken here.
  const int slots = QueryThreads();
  std::optional<ScanRetirer> retirer;
  if (scan.tight()) retirer.emplace(scan, snap, pt.size(), slots);
  const PassColumns columns(scan, retirer ? &*retirer : nullptr);
  std::vector<PartDays> part_days(parts.size());
  for (size_t j = 0; j < parts.size(); j++) {
    const auto& part = parts[j];
    if (PersonOrderScan::PartSize(blocks, part) == 0) continue;
    const int64_t t0 = part.whole_block >= 0 ? blocks[static_cast<size_t>(part.whole_block)]->min_ts()
                                             : blocks[part.rows[0].first]->ts()[part.rows[0].second];
    const int64_t utc_day_start = static_cast<int64_t>(UtcDay(t0)) * kMsPerDay;
    PartDays& pd = part_days[j];
    pd.day0 = tz.LocalDay(utc_day_start);
    pd.next1 = tz.DayStartMs(pd.day0 + 1);
    pd.next2 = tz.DayStartMs(pd.day0 + 2);
    // one_day is a shortcut, so an upper bound of the part's last instant will do: its blocks'
    // last instants, within its UTC day. Reading every listed row's time for it (a gather
    // from each sealed memtable block of the day) was a fifth of a retention query's CPU.
    int64_t max_ts = INT64_MIN;
    if (part.whole_block >= 0) {
      max_ts = blocks[static_cast<size_t>(part.whole_block)]->max_ts();
    } else {
      const int64_t day_last = utc_day_start + kMsPerDay - 1;
      uint32_t prev = UINT32_MAX;
      for (const auto& row : part.rows)
        if (row.first != prev) {
          prev = row.first;
          max_ts = std::max(max_ts, std::min(blocks[prev]->max_ts(), day_last));
        }
    }
    pd.one_day = max_ts < pd.next1;
  }
  if (retirer) retirer->RetireAll();  // the setup above read person and time columns

  enum : uint8_t { kNone = 0, kAnchored = 1, kOut = 2 };
  struct PersonState {
    int64_t anchor_ts;
    uint64_t returned;  // bit k: returned in period k
    int32_t cohort;     // period start day of the anchor
    uint8_t status;
  };
  std::vector<std::vector<uint64_t>> slot_sizes(static_cast<size_t>(slots)), slot_values(static_cast<size_t>(slots));
  const uint32_t tile_persons = retirer ? UINT32_MAX : std::max<uint32_t>(1, SequenceScanTuning().tile_persons);
  const int64_t range_from = r.range_from, range_to = r.range_to;
  const uint32_t start_code = start_m.code, ret_code = ret_m.code;
  const bool start_any = start_m.any, ret_any = ret_m.any, ret_none = ret_m.none;

  // Chunks, but not under the retirer, which counts one range per slot.
  const int chunks = retirer ? 1 : SequenceScanTuning().person_chunks_per_slot;
  ParallelPersonChunks(pt.size(), slots, chunks, [&](uint32_t p_lo, uint32_t p_hi, int slot) {
    const ScanRetirer::SlotScope slot_scope{retirer ? &*retirer : nullptr, slot};
    std::vector<uint64_t>& sizes = slot_sizes[static_cast<size_t>(slot)];
    std::vector<uint64_t>& values = slot_values[static_cast<size_t>(slot)];
    if (sizes.empty()) {  // the slot's first chunk: later ones add to it
      sizes.assign(cohort_days.size(), 0);
      values.assign(cohort_days.size() * static_cast<size_t>(P), 0);
    }
    std::vector<PersonState> state(std::min<size_t>(tile_persons, p_hi - p_lo));
    PersonTileWalk walk(scan, pt, p_lo, p_hi);
    uint32_t t_lo = 0;  // the tile's first person: state[p - t_lo]
    PassColumns::Slot cols(columns);
    if (retirer) walk.OnPartDone([&](size_t j) { retirer->PartDone(slot, j); });

    // One person's rows [i, e) of a part, in time order.
    auto run = [&](const auto& rows, const PartDays& pd, uint32_t p, size_t i, size_t e) {
      PersonState& s = state[p - t_lo];
      if (s.status == kOut) return;
      auto day_of = [&](int64_t ts) { return ts < pd.next1 ? pd.day0 : ts < pd.next2 ? pd.day0 + 1 : days.Day(ts); };
      auto period_of_day = [&](int32_t day) -> int64_t {
        return q.period == Interval::kDay ? day - s.cohort : TimeZone::PeriodsBetween(s.cohort, day, q.period);
      };
      auto period_of = [&](int64_t ts) -> int64_t {
        if (windows) return (ts - s.anchor_ts) / r.window_ms;  // ts >= the anchor
        return period_of_day(day_of(ts));
      };
      auto mark = [&](int64_t k) {
        if (k >= 0 && k < P) s.returned |= 1ULL << k;
      };
      if (s.status == kNone) {
        size_t a = i;
        if (!start_any)
          while (a < e && rows.Ev(a) != start_code) a++;
        if (a == e) return;  // no start event yet: nothing else counts
        const int64_t t = rows.Ts(a);
        if (t < range_from || t >= range_to) {  // the first start event is outside the range
          s.status = kOut;
          return;
        }
        s.status = kAnchored;
        s.anchor_ts = t;
        s.cohort = TimeZone::PeriodStartDay(day_of(t), q.period);
        s.returned = 0;
        if (ret_none) return;
        // Returns: every other row at or after the anchor (rows before it in the run have
        // smaller or equal timestamps; equal ones count).
        for (size_t j = i; j < e; j++)
          if (j != a && (ret_any || rows.Ev(j) == ret_code) && rows.Ts(j) >= t) mark(period_of(rows.Ts(j)));
        return;
      }
      if (ret_none) return;
      if (ret_any && !windows && pd.one_day) {  // the whole run is on day0: no row needs reading
        mark(period_of_day(pd.day0));
        return;
      }
      if (ret_any) {
        const int64_t k0 = period_of(rows.Ts(i)), k1 = period_of(rows.Ts(e - 1));
        if (k1 - k0 <= 1) {  // every row of the run is in period k0 or k1
          mark(k0);
          mark(k1);
          return;
        }
        for (size_t j = i; j < e; j++) mark(period_of(rows.Ts(j)));
        return;
      }
      for (size_t j = i; j < e; j++)
        if (rows.Ev(j) == ret_code) mark(period_of(rows.Ts(j)));
    };
    // Rows [first, last) of a part, person run by person run (a run may mix distinct ids of
    // one merged person).
    auto walk_rows = [&](const auto& rows, const PartDays& pd, size_t first, size_t last) {
      using Rows = std::decay_t<decltype(rows)>;
      size_t i = first, asked = first;  // rows before `asked` were prefetched (ListedRows)
      while (i < last) {
        asked = std::max(asked, i);  // a long person run read past what was asked for
        for (const size_t until = std::min(last, i + Rows::kEvAhead); asked < until; asked++) rows.PrefetchRow(asked);
        uint32_t did = rows.Did(i);
        const uint32_t p = pt.PersonOf(did);
        size_t e = SameIdEnd(rows, i + 1, last, did);
        while (e < last) {
          const uint32_t d = rows.Did(e);
          if (pt.PersonOf(d) != p) break;
          did = d;
          e = SameIdEnd(rows, e + 1, last, did);
        }
        run(rows, pd, p, i, e);
        i = e;
      }
    };

    walk.Run(
        tile_persons, deadline,
        [&](uint32_t lo, uint32_t hi) {
          t_lo = lo;
          std::fill(state.begin(), state.begin() + (hi - lo), PersonState{0, 0, 0, kNone});
        },
        [&](size_t j, size_t first, size_t last) {
          const auto& part = parts[j];
          cols.Reach(j);
          if (part.whole_block >= 0)
            walk_rows(WholeBlockRows{cols.cols()[static_cast<size_t>(part.whole_block)]}, part_days[j], first, last);
          else
            walk_rows(ListedRows{cols.cols().data(), part.rows.data()}, part_days[j], first, last);
        },
        [&](uint32_t, uint32_t t_hi) {
          // The tile's persons are complete: count them.
          for (uint32_t k = 0; k < t_hi - t_lo; k++) {
            const PersonState& s = state[k];
            if (s.status != kAnchored) continue;
            const size_t c = cohort_of_day[static_cast<size_t>(s.cohort - first_period_day)];
            sizes[c]++;
            uint64_t* v = values.data() + c * static_cast<size_t>(P);
            if (q.mode == RetentionMode::kExact) {
              for (uint64_t bits = s.returned; bits; bits &= bits - 1) v[__builtin_ctzll(bits)]++;
            } else if (s.returned) {
              const int last = 63 - __builtin_clzll(s.returned);
              for (int k2 = 0; k2 <= last; k2++) v[k2]++;
            }
          }
        });
  });
  for (size_t c = 0; c < cohort_days.size(); c++) {
    uint64_t size = 0;
    for (int s = 0; s < slots; s++)
      if (!slot_sizes[static_cast<size_t>(s)].empty()) size += slot_sizes[static_cast<size_t>(s)][c];
    if (size == 0) continue;
    Cohort& co = (*cohorts)[{cohort_days[c], 0}];
    co.size = size;
    co.values.assign(static_cast<size_t>(P), 0);
    for (int s = 0; s < slots; s++) {
      const auto& v = slot_values[static_cast<size_t>(s)];
      if (v.empty()) continue;
      for (int k = 0; k < P; k++)
        co.values[static_cast<size_t>(k)] += v[c * static_cast<size_t>(P) + static_cast<size_t>(k)];
    }
  }
}

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
