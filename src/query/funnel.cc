// Funnels. Semantics (docs/queries.md §Funnels):
// - A person enters on a first-step event with timestamp in [date_from, date_to] (local days).
// - Step k (k >= 1) is a different event occurrence, at or after step k-1's event in the
//   person's timeline order, with ts <= entry ts + window. Timeline order is (ts, lowest
//   step index the event matches, ...): at equal timestamps earlier steps come first, so
//   "order" and "pay" logged in the same second convert.
// - ordered: other events may come between steps; strict: none may (any event of the person
//   in [date_from, date_to + window] counts); unordered: the steps in any order within
//   the window from the first one (a maximum matching of events to steps).
// - A person counts at every step reached by any entry ("deepest step reached by any entry").
// - Optional steps may be skipped; an optional step counts persons who did it on a path.
// - Exclusion {event, from_step, to_step}: a path that has reached from_step but not yet
//   to_step dies when the exclusion event occurs (ordered and strict funnels).
// - Breakdown: the value on the person's first entry event ("first touch").
//
// Algorithm (ordered, strict): one pass over the person's timeline keeping, per step k, the
// path with the latest entry that reached k (a later entry leaves the most window for the
// rest); an event matching step k extends the best path at k-1 (ClickHouse windowFunnel's
// idea). Cost is O(events x steps matched per event), independent of the step count for
// events that match one step: 30 steps cost about what 5 do.
#include <algorithm>
#include <map>

#include "query/operators.h"
#include "query/person_scan.h"
#include "query/scan.h"

namespace ns {

using nlohmann::json;

namespace {

constexpr uint64_t kOtherBit = 1ULL << 63;
constexpr int kExclShift = 32;

constexpr int64_t kNoPath = INT64_MIN;

struct Path {
  int64_t start = kNoPath;  // entry ts; kNoPath: no path at this step
  int64_t last_done = 0;    // ts of the last step actually done
  bool valid() const { return start != kNoPath; }
};

struct PersonResult {
  uint32_t reached = 0;              // bit k: step k reached
  int64_t conv_ms[kMaxFunnelSteps];  // time from the previous done step when first reached
  uint32_t group = 0;
};

class FunnelEvaluator {
 public:
  FunnelEvaluator(const FunnelQuery& q, int64_t entry_from, int64_t entry_to)
      : q_(q),
        n_(static_cast<int>(q.steps.size())),
        step_bits_((1ULL << q.steps.size()) - 1),
        entry_from_(entry_from),
        entry_to_(entry_to) {}

  PersonResult EvaluateUnordered(const TimelineEntry* e, size_t count) const {
    PersonResult r;
    Unordered(e, count, &r);
    return r;
  }

 private:
  bool InEntryRange(int64_t ts) const { return ts >= entry_from_ && ts < entry_to_; }

  // Best path that may advance to step k: at k-1, or skipping optional steps below k.
  const Path* Eff(const Path* lv, int k) const {
    const Path* best = nullptr;
    for (int j = k - 1; j >= 0; j--) {
      if (lv[j].valid() && (!best || lv[j].start > best->start)) best = &lv[j];
      if (!q_.steps[j].optional) break;
    }
    return best;
  }

 public:
  // Applies one event of a person (events in timeline order) to the person's paths lv
  // (n_ entries; `scratch` n_ entries for strict mode). on_reach(k, ms) is called when the
  // person first reaches step k (ms: time from the previous done step; 0 for the entry).
  template <typename OnReach>
  void Apply(Path* lv, Path* scratch, uint32_t* reached, bool* entered, uint32_t* group, int64_t ts, uint64_t tag,
             uint32_t aux, OnReach&& on_reach) const {
    const bool strict = q_.order == FunnelOrder::kStrict;
    const uint64_t steps = tag & step_bits_;
    Path* target = lv;
    if (strict) {
      for (int k = 0; k < n_; k++) scratch[k].start = kNoPath;
      target = scratch;
    }
    for (uint64_t m = steps & ~1ULL; m;) {
      int k = 63 - __builtin_clzll(m);  // highest first: one event fills one step per path
      m &= ~(1ULL << k);
      const Path* prev = Eff(lv, k);
      if (!prev || ts - prev->start > q_.window_ms) continue;
      if (!target[k].valid() || prev->start > target[k].start) {
        Path p = *prev;
        int64_t last = p.last_done;
        p.last_done = ts;
        target[k] = p;
        if (!(*reached & (1u << k))) {
          *reached |= 1u << k;
          on_reach(k, ts - last);
        }
      }
    }
    if ((steps & 1) && InEntryRange(ts)) {
      target[0] = Path{ts, ts};
      if (!*entered) {
        *entered = true;
        *group = aux;
        *reached |= 1;
        on_reach(0, 0);
      }
    }
    if (strict)
      for (int k = 0; k < n_; k++) lv[k] = scratch[k];
    uint64_t excl = (tag >> kExclShift) & 0x7fffffffULL;
    while (excl) {
      int x = __builtin_ctzll(excl);
      excl &= excl - 1;
      const auto& ex = q_.exclusions[static_cast<size_t>(x)];
      for (int k = ex.from_step; k < ex.to_step; k++) lv[k].start = kNoPath;
    }
  }

 private:
  // Maximum matching of steps to distinct events (Kuhn's algorithm; steps <= 30).
  static bool Augment(int step, const std::vector<uint64_t>& masks, std::vector<int>& match_of_event,
                      uint64_t& visited_events) {
    for (size_t ev = 0; ev < masks.size(); ev++) {
      if (!(masks[ev] & (1ULL << step)) || (visited_events & (1ULL << ev))) continue;
      visited_events |= 1ULL << ev;
      if (match_of_event[ev] < 0 || Augment(match_of_event[ev], masks, match_of_event, visited_events)) {
        match_of_event[ev] = step;
        return true;
      }
    }
    return false;
  }

  void Unordered(const TimelineEntry* e, size_t count, PersonResult* r) const {
    const uint64_t step_bits = (1ULL << n_) - 1;
    int best = 0;
    bool entered = false;
    size_t window_first = 0;
    for (size_t i = 0; i < count && best < n_; i++) {
      if (!(e[i].tag & step_bits) || !InEntryRange(e[i].ts)) continue;
      if (!entered) {
        entered = true;
        r->group = e[i].aux;
      }
      while (e[window_first].ts < e[i].ts) window_first++;
      // Events in the window, at most n_ per distinct step mask (more cannot help).
      std::vector<uint64_t> masks;
      std::map<uint64_t, int> per_mask;
      for (size_t j = window_first; j < count && e[j].ts - e[i].ts <= q_.window_ms && masks.size() < 64; j++) {
        uint64_t m = e[j].tag & step_bits;
        if (!m || per_mask[m]++ >= n_) continue;
        masks.push_back(m);
      }
      std::vector<int> match(masks.size(), -1);
      int size = 0;
      for (int s = 0; s < n_; s++) {
        uint64_t visited = 0;
        if (Augment(s, masks, match, visited)) size++;
      }
      best = std::max(best, size);
    }
    for (int k = 0; k < best; k++) {
      r->reached |= 1u << k;
      r->conv_ms[k] = -1;
    }
  }

  const FunnelQuery& q_;
  const int n_;
  const uint64_t step_bits_;
  const int64_t entry_from_, entry_to_;
};

struct GroupAgg {
  std::vector<uint64_t> count;
  std::vector<std::vector<int64_t>> conv;  // conversion times (ms) per step
  std::vector<uint64_t> drop_count;
  std::vector<std::vector<uint32_t>> drop_persons;
};

std::vector<FunnelStepResult> StepResults(const FunnelQuery& q, GroupAgg& g, const PersonNamer& namer,
                                          bool with_persons) {
  std::vector<FunnelStepResult> steps;
  const size_t n = q.steps.size();
  steps.reserve(n);
  for (size_t k = 0; k < n; k++) {
    FunnelStepResult s;
    s.event = q.steps[k].event;
    s.label = q.steps[k].label;
    s.optional = q.steps[k].optional;
    s.count = g.count[k];
    double c0 = static_cast<double>(g.count[0]);
    s.conversion_from_start = g.count[0] ? static_cast<double>(g.count[k]) / c0 : 0.0;
    if (k == 0)
      s.conversion_from_previous = g.count[0] ? 1.0 : 0.0;
    else
      s.conversion_from_previous =
          g.count[k - 1] ? static_cast<double>(g.count[k]) / static_cast<double>(g.count[k - 1]) : 0.0;
    auto& v = g.conv[k];
    if (k > 0 && !v.empty()) {
      // Median by selection (O(n)), not a full sort.
      const size_t mid = v.size() / 2;
      std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(mid), v.end());
      double med = static_cast<double>(v[mid]);
      if (v.size() % 2 == 0)
        med = (med + static_cast<double>(*std::max_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(mid)))) / 2;
      double sum = 0;
      for (int64_t x : v) sum += static_cast<double>(x);
      s.median_seconds_from_previous = med / 1000.0;
      s.average_seconds_from_previous = sum / static_cast<double>(v.size()) / 1000.0;
    }
    if (k > 0) {
      s.dropoff_count = g.drop_count[k];
      if (with_persons) {
        s.dropoff_persons.emplace();
        for (uint32_t p : g.drop_persons[k]) s.dropoff_persons->push_back(namer ? namer(p) : std::to_string(p));
      }
    }
    steps.push_back(std::move(s));
  }
  return steps;
}

}  // namespace

StatusOr<FunnelResult> RunFunnel(const FunnelQuery& q, const StoreSnapshot& snap, const TimeZone& tz,
                                 const PersonNamer& namer, const Deadline* deadline,
                                 std::vector<FunnelReach>* reaches) {
  const size_t n = q.steps.size();
  const int64_t entry_from = tz.DayStartMs(q.from_day), entry_to = tz.DayStartMs(q.to_day + 1);
  const int64_t scan_to = entry_to + q.window_ms + 1;
  const EventDict& dict = *snap.events;

  // Per event code, the steps/exclusions it can match (before filters).
  std::vector<uint64_t> by_code(dict.size() + 1, 0);
  uint64_t any_mask = 0, filtered = 0;
  std::vector<FilterSet> filters(n + q.exclusions.size());
  for (size_t k = 0; k < n + q.exclusions.size(); k++) {
    bool is_step = k < n;
    const std::string& name = is_step ? q.steps[k].event : q.exclusions[k - n].event;
    uint64_t bit = is_step ? (1ULL << k) : (1ULL << (kExclShift + (k - n)));
    EventMatcher m = EventMatcher::Make(name, dict);
    if (m.any)
      any_mask |= bit;
    else if (!m.none && m.code < by_code.size())
      by_code[m.code] |= bit;
    std::vector<Filter> f = is_step ? q.filters : std::vector<Filter>{};
    const auto& own = is_step ? q.steps[k].filters : q.exclusions[k - n].filters;
    f.insert(f.end(), own.begin(), own.end());
    if (!f.empty()) {
      filters[k] = FilterSet(f, snap);
      filtered |= bit;
    }
  }
  const bool strict = q.order == FunnelOrder::kStrict;
  // Rows that can be an entry: the first step, or (unordered) any step.
  const uint64_t entry_bits = q.order == FunnelOrder::kUnordered ? ((1ULL << n) - 1) : 1ULL;
  BreakdownResolver breakdown(q.breakdown, snap);

  // Per-block state for tagging rows: filter evaluators and breakdown groups.
  struct BlockState {
    bool ready = false;
    bool skip = false;  // no row of the block can match
    std::vector<FilterSet::BlockEval> evals;
    BlockGroups groups;
    const uint32_t* ev = nullptr;
    const uint32_t* did = nullptr;
    const int64_t* ts = nullptr;
  };
  auto prepare = [&](const Block& b, BlockState& st) {
    st.ready = true;
    if (!strict && !any_mask) {
      bool any = false;
      for (auto& [code, cnt] : b.event_counts())
        if (code < by_code.size() && by_code[code]) any = true;
      if (!any) {
        st.skip = true;
        return;
      }
    }
    st.evals.resize(filters.size());
    for (size_t k = 0; k < filters.size(); k++)
      if (!filters[k].empty()) st.evals[k] = filters[k].ForBlock(b);
    if (breakdown.active()) breakdown.ResolveBlock(b, &st.groups);
    st.ev = b.ev().data();
    st.did = b.did().data();
    st.ts = b.ts().data();
  };
  // Tag of row i: bit k = step k, bit 32+x = exclusion x, bit 63 = other event (strict).
  auto tag_of = [&](const BlockState& st, size_t i) -> uint64_t {
    const uint32_t e = st.ev[i];
    uint64_t m = (e < by_code.size() ? by_code[e] : 0) | any_mask;
    for (uint64_t f = m & filtered; f;) {
      int k = __builtin_ctzll(f);
      f &= f - 1;
      size_t idx = k < kExclShift ? static_cast<size_t>(k) : n + static_cast<size_t>(k - kExclShift);
      if (!st.evals[idx].Match(i)) m &= ~(1ULL << k);
    }
    if (!m && strict) m = kOtherBit;
    return m;
  };

  // Simultaneous entries: the smallest breakdown value (as JSON text) is the first touch,
  // so results do not depend on storage order.
  // (By value: a reference into the growing cache would dangle when the next call grows it.)
  std::vector<std::string> group_keys;
  auto group_key = [&](uint32_t g) -> std::string {
    while (group_keys.size() <= g)
      group_keys.push_back(breakdown.Value(static_cast<uint32_t>(group_keys.size())).dump());
    return group_keys[g];
  };
  FunnelEvaluator eval(q, entry_from, entry_to);
  std::map<uint32_t, GroupAgg> agg;  // per breakdown group
  GroupAgg total;
  auto init = [&](GroupAgg& g) {
    g.count.assign(n, 0);
    g.conv.assign(n, {});
    g.drop_count.assign(n, 0);
    g.drop_persons.assign(n, {});
  };
  init(total);
  auto add = [&](GroupAgg& g, uint32_t reached, uint32_t person) {
    for (size_t k = 0; k < n; k++) {
      if (reached & (1u << k)) {
        g.count[k]++;
      } else if (k > 0 && (reached & (1u << (k - 1)))) {
        g.drop_count[k]++;
        if (q.dropoff_limit == 0 || g.drop_persons[k].size() < q.dropoff_limit) g.drop_persons[k].push_back(person);
      }
    }
  };
  auto group_agg = [&](uint32_t group) -> GroupAgg& {
    auto [it, ins] = agg.try_emplace(group);
    if (ins) init(it->second);
    return it->second;
  };

  if (q.order == FunnelOrder::kUnordered) {
    // Unordered funnels look at all events of a window at once: per-person timelines.
    std::vector<BlockState> states;
    RowClassifier classify = [&](const Block& b, std::vector<uint64_t>* tags, std::vector<uint32_t>* aux) {
      BlockState st;
      prepare(b, st);
      if (st.skip) return;
      for (size_t i = 0; i < b.size(); i++) {
        uint64_t m = tag_of(st, i);
        (*tags)[i] = m;
        if ((m & entry_bits) && breakdown.active()) (*aux)[i] = st.groups[i];
      }
    };
    const uint64_t order_mask = (1ULL << n) - 1;
    Timelines tl = BuildTimelines(snap, entry_from, scan_to, classify, order_mask, deadline);
    for (size_t i = 0; i < tl.persons.size(); i++) {
      const TimelineEntry* e = tl.entries.data() + tl.offsets[i];
      const size_t cnt = tl.offsets[i + 1] - tl.offsets[i];
      PersonResult r = eval.EvaluateUnordered(e, cnt);
      if (!r.reached) continue;
      if (breakdown.active()) {
        // First entry: the first in-range step event; among simultaneous ones, the smallest value.
        for (size_t j = 0; j < cnt; j++) {
          if (!(e[j].tag & entry_bits) || e[j].ts < entry_from || e[j].ts >= entry_to) continue;
          r.group = e[j].aux;
          for (size_t k = j + 1; k < cnt && e[k].ts == e[j].ts && e[k].order == e[j].order && e[k].tag == e[j].tag; k++)
            if ((e[k].tag & entry_bits) && group_key(e[k].aux) < group_key(r.group)) r.group = e[k].aux;
          break;
        }
      }
      add(total, r.reached, tl.persons[i]);
      if (breakdown.active()) add(group_agg(r.group), r.reached, tl.persons[i]);
    }
  } else {
    // Ordered and strict funnels: one streaming pass in per-person time order with the
    // paths of every person in dense arrays (see person_scan.h).
    const PersonTable& pt = *snap.persons;
    const size_t np = pt.size();
    PersonOrderScan scan(snap, entry_from, scan_to);
    const auto& blocks = scan.blocks();
    std::vector<BlockState> states(blocks.size());
    for (size_t b = 0; b < blocks.size(); b++) prepare(*blocks[b], states[b]);  // before threads: interning
    // One record per person, [header][path of step 0]..[path of step n-1], so a person's
    // state is one or two cache lines. The header slot packs reached (low 32 bits of
    // start), group (high 32 bits) and entered (last_done).
    const size_t stride = n + 1;
    std::vector<Path> state(np * stride);
    for (size_t p = 0; p < np; p++) state[p * stride] = Path{0, 0};
    auto reached_of = [&](uint32_t p) { return static_cast<uint32_t>(static_cast<uint64_t>(state[p * stride].start)); };
    auto group_of = [&](uint32_t p) {
      return static_cast<uint32_t>(static_cast<uint64_t>(state[p * stride].start) >> 32);
    };
    struct Conv {
      uint32_t person;
      uint32_t step;
      int64_t ms;
    };
    const int slots = QueryThreads();
    std::vector<std::vector<Conv>> convs_by_slot(static_cast<size_t>(slots));
    std::vector<std::string> group_keys_snapshot;
    if (breakdown.active())
      for (uint32_t g = 0; g < breakdown.groups(); g++) group_keys_snapshot.push_back(breakdown.Value(g).dump());
    const uint64_t step_mask = (1ULL << n) - 1;
    // Event codes the funnel can use; strict funnels and "$any" steps need every row.
    std::vector<uint32_t> needed_codes;
    for (uint32_t c = 0; c < by_code.size(); c++)
      if (by_code[c]) needed_codes.push_back(c);
    const std::vector<uint32_t>* codes = (strict || any_mask) ? nullptr : &needed_codes;
    struct Tie {
      uint32_t order;
      uint64_t tag;
      uint32_t aux;
    };
    std::vector<std::vector<Path>> scratch_by_slot(static_cast<size_t>(slots), std::vector<Path>(n));
    std::vector<std::vector<FunnelReach>> reaches_by_slot(reaches ? static_cast<size_t>(slots) : 0);
    ScanPersonGroups<Tie>(
        scan, pt, slots, codes,
        [&](uint32_t b, uint32_t i, uint32_t* person, int64_t* ts_out, Tie* tie) {
          const BlockState& st = states[b];
          if (st.skip) return false;
          const int64_t ts = st.ts[i];
          if (ts < entry_from || ts >= scan_to) return false;
          const uint64_t m = tag_of(st, i);
          if (!m) return false;
          const uint32_t d = st.did[i];
          *person = pt.PersonOf(d);
          *ts_out = ts;
          const uint64_t sm = m & step_mask;
          *tie = {sm ? static_cast<uint32_t>(__builtin_ctzll(sm)) : 64u, m,
                  (m & entry_bits) && breakdown.active() ? st.groups[i] : 0u};
          return true;
        },
        [&](int slot, uint32_t p, int64_t ts, std::vector<Tie>& ties) {
          if (ties.size() > 1)
            std::sort(ties.begin(), ties.end(), [&](const Tie& a, const Tie& b) {
              if (a.order != b.order) return a.order < b.order;
              if (a.tag != b.tag) return a.tag < b.tag;
              return a.aux != b.aux && group_keys_snapshot[a.aux] < group_keys_snapshot[b.aux];
            });
          std::vector<Conv>& convs = convs_by_slot[static_cast<size_t>(slot)];
          Path* rec = &state[p * stride];
          uint32_t reached = static_cast<uint32_t>(static_cast<uint64_t>(rec->start));
          uint32_t grp = static_cast<uint32_t>(static_cast<uint64_t>(rec->start) >> 32);
          bool ent = rec->last_done != 0;
          for (const Tie& t : ties)
            eval.Apply(rec + 1, scratch_by_slot[static_cast<size_t>(slot)].data(), &reached, &ent, &grp, ts, t.tag,
                       t.aux, [&](int k, int64_t ms) {
                         if (k > 0) convs.push_back({p, static_cast<uint32_t>(k), ms});
                         if (reaches)
                           reaches_by_slot[static_cast<size_t>(slot)].push_back({p, static_cast<uint32_t>(k), ts});
                       });
          rec->start = static_cast<int64_t>((static_cast<uint64_t>(grp) << 32) | reached);
          rec->last_done = ent ? 1 : 0;
        },
        deadline);
    std::vector<Conv> convs;
    for (auto& c : convs_by_slot) convs.insert(convs.end(), c.begin(), c.end());
    for (auto& r : reaches_by_slot) reaches->insert(reaches->end(), r.begin(), r.end());
    for (uint32_t p = 0; p < np; p++) {
      const uint32_t reached = reached_of(p);
      if (!reached) continue;
      add(total, reached, p);
      if (breakdown.active()) add(group_agg(group_of(p)), reached, p);
    }
    for (const Conv& c : convs) {
      if (c.step == 0) continue;
      total.conv[c.step].push_back(c.ms);
      if (breakdown.active()) group_agg(group_of(c.person)).conv[c.step].push_back(c.ms);
    }
  }
  if (deadline && deadline->fired()) return deadline->ToStatus();
  FunnelResult out;
  out.timezone = tz.name();
  out.order = q.order;
  out.window_seconds = q.window_ms / 1000;
  out.date_from = q.from_day;
  out.date_to = q.to_day;
  out.steps = StepResults(q, total, namer, true);
  if (breakdown.active()) {
    std::vector<std::pair<uint32_t, GroupAgg*>> order;
    for (auto& [g, a] : agg) order.push_back({g, &a});
    std::stable_sort(order.begin(), order.end(),
                     [](auto& a, auto& b) { return a.second->count[0] > b.second->count[0]; });
    if (order.size() > q.breakdown_limit) order.resize(q.breakdown_limit);
    for (auto& [g, a] : order) out.breakdowns.push_back({breakdown.Value(g), StepResults(q, *a, namer, false)});
  }
  return out;
}

// ---------------------------------------------------------------- registration

const QueryKind kFunnelKind{"funnel",
                            {"funnels"},
                            [](const json& request, const QueryContext& ctx) -> StatusOr<json> {
                              NS_ASSIGN_OR_RETURN(FunnelQuery q, ParseFunnelQuery(request));
                              NS_RETURN_IF_ERROR(ctx.BindCohorts(q.filters));
                              for (auto& s : q.steps) NS_RETURN_IF_ERROR(ctx.BindCohorts(s.filters));
                              for (auto& e : q.exclusions) NS_RETURN_IF_ERROR(ctx.BindCohorts(e.filters));
                              NS_ASSIGN_OR_RETURN(FunnelResult r,
                                                  RunFunnel(q, ctx.snap, ctx.tz, ctx.namer, ctx.deadline));
                              return ToJson(r);
                            },
                            [](const json& request) { return ParseFunnelQuery(request).status(); },
                            [](const json& r) {
                              ResultTable rows{{"step", "event", "count", "from start", "from previous", "median s"}};
                              for (const auto& s : r["steps"])
                                rows.push_back({s["order"], s["label"], s["count"], s["conversion_from_start"],
                                                s["conversion_from_previous"], s["median_seconds_from_previous"]});
                              return rows;
                            }};

}  // namespace ns
