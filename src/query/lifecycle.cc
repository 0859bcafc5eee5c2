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
#include <atomic>
#include <thread>

#include "query/json_fields.h"
#include "query/lifecycle_plain.h"
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

namespace {

constexpr int32_t kNoDay = INT32_MIN;

// What both modes need of a person: the first day they were active, and on which days of a
// window (the range, and for the activity mode the interval before it) they were active;
// activity before the window only as its first and last day. A row in the window touches
// one word of its person's bitmap and nothing else (the first day is the lowest bit when
// nothing came before the window). Built by one pass over the blocks in
// parallel (each thread its own arrays, OR-ed together after), with no rows put in
// per-person time order: the plain path's merge of every row was most of its cost.
struct ActiveDays {
  int32_t window_from = 0;
  size_t words = 0;                   // bitmap words per person
  std::vector<int32_t> first_before;  // first active day before window_from (INT32_MAX: none)
  std::vector<int32_t> before;        // last active day before window_from (kNoDay: none)
  std::vector<uint64_t> bits;         // [person * words + w]: day window_from + 64 w + bit

  void Init(size_t persons) {
    first_before.assign(persons, INT32_MAX);
    before.assign(persons, kNoDay);
    bits.assign(persons * words, 0);
  }
};

// The window of at most this many 64-day words per person takes the day-bitmap path
// (8 words: 512 days, 72 bytes a person and thread); longer ranges the per-person driver.
constexpr size_t kMaxWindowWords = 8;

ActiveDays CollectActiveDays(const StoreSnapshot& snap, const TimeZone& tz, const EventMatcher& m,
                             const FilterSet& filters, int32_t window_from, int32_t to_day, const Deadline* deadline) {
  const PersonTable& pt = *snap.persons;
  const size_t np = pt.size();
  const int64_t scan_to = tz.DayStartMs(to_day + 1);
  ActiveDays proto;
  proto.window_from = window_from;
  proto.words = static_cast<size_t>(to_day - window_from + 64) / 64;
  std::vector<const Block*> blocks;
  for (const auto& bp : snap.blocks)
    if (bp->size() && bp->min_ts() < scan_to && m.MayMatch(*bp)) blocks.push_back(bp.get());
  const int threads = std::max(1, std::min<int>(QueryThreads(), static_cast<int>(blocks.size())));
  std::vector<ActiveDays> parts(static_cast<size_t>(threads), proto);
  std::atomic<size_t> next{0};
  auto work = [&](int t) {
    ActiveDays& A = parts[static_cast<size_t>(t)];
    A.Init(np);
    const auto& po = pt.person_of();
    const size_t W = A.words;
    std::vector<int64_t> starts;  // starts of the block's local days after its first
    for (size_t bi; (bi = next.fetch_add(1)) < blocks.size();) {
      if (deadline && deadline->Expired()) return;
      const Block& blk = *blocks[bi];
      const FilterSet::BlockEval e = filters.ForBlock(blk);
      if (e.always_false) continue;
      // A block spans a day or two: a row's day is its first day plus the day starts it passed.
      const int32_t d0 = tz.LocalDay(blk.min_ts());
      const int32_t d1 = tz.LocalDay(std::min(blk.max_ts(), scan_to - 1));
      starts.clear();
      for (int32_t d = d0 + 1; d <= d1; d++) starts.push_back(tz.DayStartMs(d));
      // Raw pointers: the stores below could alias the vectors' own fields otherwise, and
      // the compiler would reload them on every row.
      const int64_t* ts = blk.ts().data();
      const uint32_t* did = blk.did().data();
      const uint32_t* po_data = po.data();
      const size_t po_size = po.size();
      int32_t* first_before = A.first_before.data();
      int32_t* before = A.before.data();
      uint64_t* bits = A.bits.data();
      const int64_t* day_starts = starts.data();
      const size_t n_starts = starts.size();
      const uint32_t* rb = nullptr;
      const uint32_t* re = nullptr;
      if (!m.any) std::tie(rb, re) = blk.EventRows(m.code);
      const size_t count = m.any ? blk.size() : static_cast<size_t>(re - rb);
      uint32_t last_p = UINT32_MAX;
      int32_t last_day = kNoDay;
      for (size_t j = 0; j < count; j++) {
        const size_t i = m.any ? j : rb[j];
        const int64_t t_ms = ts[i];
        if (t_ms >= scan_to) continue;
        if (!e.always_true && !e.Match(i)) continue;
        const uint32_t d = did[i];
        const uint32_t p = d < po_size ? po_data[d] : d;
        if (p >= np) continue;  // newer than the snapshot's person table
        int32_t day = d0;
        if (n_starts <= 4) {
          for (size_t k = 0; k < n_starts; k++) day += t_ms >= day_starts[k];
        } else {
          day += static_cast<int32_t>(std::upper_bound(day_starts, day_starts + n_starts, t_ms) - day_starts);
        }
        if (p == last_p && day == last_day) continue;  // rows come grouped by person
        last_p = p;
        last_day = day;
        if (day >= window_from) {
          const uint32_t off = static_cast<uint32_t>(day - window_from);
          bits[p * W + (off >> 6)] |= 1ULL << (off & 63);
        } else {
          first_before[p] = std::min(first_before[p], day);
          before[p] = std::max(before[p], day);
        }
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; t++) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  ActiveDays& out = parts[0];
  for (size_t t = 1; t < parts.size(); t++) {
    const ActiveDays& B = parts[t];
    for (size_t p = 0; p < np; p++) {
      out.first_before[p] = std::min(out.first_before[p], B.first_before[p]);
      out.before[p] = std::max(out.before[p], B.before[p]);
    }
    for (size_t w = 0; w < out.bits.size(); w++) out.bits[w] |= B.bits[w];
    parts[t] = ActiveDays{};
  }
  return std::move(out);
}

// The first day person p was active (INT32_MAX: never).
int32_t FirstActiveDay(const ActiveDays& a, size_t p) {
  if (a.first_before[p] != INT32_MAX) return a.first_before[p];
  const uint64_t* w = &a.bits[p * a.words];
  for (size_t k = 0; k < a.words; k++)
    if (w[k]) return a.window_from + static_cast<int32_t>(k * 64 + static_cast<size_t>(__builtin_ctzll(w[k])));
  return INT32_MAX;
}

// Calls fn(day) for each active day of person p in the window, in order.
template <typename Fn>
void ForEachActiveDay(const ActiveDays& a, size_t p, Fn&& fn) {
  const uint64_t* w = &a.bits[p * a.words];
  for (size_t k = 0; k < a.words; k++)
    for (uint64_t x = w[k]; x; x &= x - 1)
      fn(a.window_from + static_cast<int32_t>(k * 64 + static_cast<size_t>(__builtin_ctzll(x))));
}

StatusOr<LifecycleResult> Lifecycle(const LifecycleQuery& q, const QueryContext& ctx, bool plain) {
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
  static const char* kStages[4] = {"new", "active", "silent", "churned"};
  static const char* kActivity[4] = {"new", "returning", "resurrecting", "dormant"};
  auto finish = [&](const std::vector<int64_t>& total) {
    for (size_t x = 0; x < 4; x++) {
      std::vector<int64_t> v(K);
      for (size_t k = 0; k < K; k++) v[k] = total[k * 4 + x];
      out.series.emplace_back(q.mode == LifecycleMode::kStages ? kStages[x] : kActivity[x], std::move(v));
    }
    return out;
  };
  auto stage = [&](int32_t first, int32_t last, int32_t d) {
    if (d - first < s.new_days) return 0;
    const int32_t idle = d - last;
    return idle < s.active_days ? 1 : idle < s.churn_days ? 2 : 3;
  };

  // The day-bitmap path (ActiveDays): the window is the range, and for the activity mode
  // also the interval before its first (returning or resurrecting in interval 0).
  const int32_t window_from =
      q.mode == LifecycleMode::kStages
          ? q.from_day
          : TimeZone::PeriodStartDay(TimeZone::PeriodStartDay(q.from_day, q.interval) - 1, q.interval);
  if (!plain && !m.none && static_cast<size_t>(q.to_day - window_from + 64) / 64 <= kMaxWindowWords) {
    const ActiveDays a = CollectActiveDays(snap, tz, m, filters, window_from, q.to_day, ctx.deadline);
    if (ctx.deadline && ctx.deadline->Expired()) return ctx.deadline->ToStatus();
    std::vector<int32_t> interval_of_day;  // activity: interval of each window day
    if (q.mode == LifecycleMode::kActivity)
      for (int32_t d = window_from; d <= q.to_day; d++)
        interval_of_day.push_back(TimeZone::PeriodsBetween(q.from_day, d, q.interval));
    const int slots = QueryThreads();
    std::vector<std::vector<int64_t>> counts(static_cast<size_t>(slots), std::vector<int64_t>(K * 4, 0));
    const int32_t kInK = static_cast<int32_t>(K);
    ParallelPersonRanges(np, slots, [&](uint32_t lo, uint32_t hi, int slot) {
      auto& c = counts[static_cast<size_t>(slot)];
      for (uint32_t p = lo; p < hi; p++) {
        const int32_t f = FirstActiveDay(a, p);
        if (f == INT32_MAX) continue;
        if (q.mode == LifecycleMode::kStages) {
          // Each bucket end after the first activity, with the last activity up to it.
          int32_t last = a.before[p];
          size_t k = 0;
          while (k < K && end_day[k] < f) k++;
          ForEachActiveDay(a, p, [&](int32_t d) {
            for (; k < K && end_day[k] < d; k++) c[k * 4 + static_cast<size_t>(stage(f, last, end_day[k]))]++;
            last = d;
          });
          for (; k < K; k++) c[k * 4 + static_cast<size_t>(stage(f, last, end_day[k]))]++;
          continue;
        }
        // The plain path's walk over the person's active intervals; activity before the
        // window is an interval <= -2 (never counted, never the one before interval 0).
        bool seen = f < window_from;
        int32_t last = -2;
        ForEachActiveDay(a, p, [&](int32_t d) {
          const int32_t j = interval_of_day[static_cast<size_t>(d - window_from)];
          if (!seen) {
            seen = true;
            last = j;
            if (j >= 0 && j < kInK) c[static_cast<size_t>(j) * 4 + 0]++;
            return;
          }
          if (j == last) return;
          if (j >= 0 && j < kInK) c[static_cast<size_t>(j) * 4 + (last == j - 1 ? 1 : 2)]++;
          const int32_t gone = last + 1;
          if (gone >= 0 && gone < j && gone < kInK) c[static_cast<size_t>(gone) * 4 + 3]--;
          last = j;
        });
        const int32_t gone = last + 1;
        if (gone >= 0 && gone < kInK) c[static_cast<size_t>(gone) * 4 + 3]--;
      }
    });
    for (size_t sl = 1; sl < counts.size(); sl++)
      for (size_t x = 0; x < counts[0].size(); x++) counts[0][x] += counts[sl][x];
    return finish(counts[0]);
  }

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

  auto stage_of = [&](const PersonState& st, int32_t d) { return stage(st.first, st.last, d); };
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
  return finish(total);
}

}  // namespace

StatusOr<LifecycleResult> RunLifecycle(const LifecycleQuery& q, const QueryContext& ctx) {
  return Lifecycle(q, ctx, false);
}

StatusOr<LifecycleResult> RunLifecyclePlain(const LifecycleQuery& q, const QueryContext& ctx) {
  return Lifecycle(q, ctx, true);
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
