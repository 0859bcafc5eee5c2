// Funnels. Semantics (docs/queries.md §Funnels):
// - A unit (a person, or with "aggregate_by":"session" a session of a person) enters on a
//   first-step event with timestamp in [date_from, date_to] (local days).
// - Step k (k >= 1) is a different event occurrence, at or after step k-1's event in the
//   unit's timeline order, with ts <= entry ts + window. Timeline order is (ts, lowest
//   step index the event matches, ...): at equal timestamps earlier steps come first, so
//   "order" and "pay" logged in the same second convert.
// - ordered: other events may come between steps; strict: none may (any event of the unit
//   in [date_from, date_to + window] counts); unordered: the steps in any order within
//   the window from the first one (a maximum matching of events to steps).
// - A unit counts at every step reached by any entry ("deepest step reached by any entry").
// - Optional steps may be skipped; an optional step counts units who did it on a path.
// - Exclusion {event, from_step, to_step}: a path that has reached from_step but not yet
//   to_step dies when the exclusion event occurs (ordered and strict funnels).
// - A first_ever step is filled only by the person's first-ever event matching it.
// - Breakdown: the value on the unit's first entry event ("first touch"), on the event
//   that first reached its deepest step ("last touch"), or on the event that first reached
//   step N ("step").
// - "viz":"trends" answers, per entry period, the funnel of the entries in that period.
//
// Algorithm (ordered, strict): one pass over each person's timeline keeping, per attempt
// set and step k, the path with the latest entry that reached k (a later entry leaves the
// most window for the rest); an event matching step k extends the best path at k-1
// (ClickHouse windowFunnel's idea). An attempt set is the paths of one unit whose entries
// fall in one entry range: the whole range, and with "viz":"trends" one set per entry
// period as well, so conversion over time is the same pass, not one query per period.
// Sets live in a per-thread pool, linked from their person, and are finished (added to the
// counts) once no later event can change them. Cost is O(events x sets x steps matched
// per event), independent of the step count for events that match one step.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <map>
#include <memory>
#include <new>

#include "query/funnel_plain.h"
#include "query/funnel_viz.h"
#include "query/operators.h"
#include "query/person_scan.h"
#include "query/scan.h"
#include "query/tile_timelines.h"

namespace ns {

using nlohmann::json;

namespace {

constexpr uint64_t kOtherBit = 1ULL << 63;
constexpr int kExclShift = 32;
constexpr int64_t kNoPath = INT64_MIN;
constexpr uint32_t kNil = UINT32_MAX;
constexpr uint32_t kNoGroup = UINT32_MAX;  // a unit in no breakdown group (step attribution, step not reached)
// Session keys: the value id of the row's $session_id (a BreakdownResolver group, below
// 2^31), or kGapSession | n for the person's n-th run of events without one.
constexpr uint32_t kGapSession = 1u << 31;
constexpr int64_t kSessionGapMs = 30LL * 60 * 1000;

struct Path {
  int64_t start = kNoPath;  // entry ts; kNoPath: no path at this step
  int64_t last_done = 0;    // ts of the last step actually done
  bool valid() const { return start != kNoPath; }
};

class FunnelEvaluator {
 public:
  explicit FunnelEvaluator(const FunnelQuery& q)
      : q_(q), n_(static_cast<int>(q.steps.size())), step_bits_((1ULL << q.steps.size()) - 1) {}

  // Applies one event of a unit (events in timeline order) to one attempt set: its paths lv
  // (n_ entries; `scratch` n_ entries for strict mode) and reached steps. `from` (with
  // `scratch_from`), when given, holds per path the ts at which it did the query's
  // from_step (time to convert from a step after the first). entry_ok: the event may start
  // a path (a first-step event in the set's entry range). on_reach(k, prev, prev_from) is
  // called when the set first reaches step k, with the path it extended and that path's
  // from_step ts (for k = 0, the new entry path).
  template <typename OnReach>
  void Apply(Path* lv, int64_t* from, Path* scratch, int64_t* scratch_from, uint32_t* reached, int64_t ts, uint64_t tag,
             bool entry_ok, OnReach&& on_reach) const {
    const bool strict = q_.order == FunnelOrder::kStrict;
    const uint64_t steps = tag & step_bits_;
    if (strict && !steps) {  // another event: every attempt breaks
      for (int k = 0; k < n_; k++) lv[k].start = kNoPath;
      return;
    }
    Path* target = lv;
    int64_t* target_from = from;
    if (strict) {
      for (int k = 0; k < n_; k++) scratch[k].start = kNoPath;
      target = scratch;
      target_from = scratch_from;
    }
    for (uint64_t m = steps & ~1ULL; m;) {
      int k = 63 - __builtin_clzll(m);  // highest first: one event fills one step per path
      m &= ~(1ULL << k);
      const Path* prev = Eff(lv, k);
      if (!prev || ts - prev->start > q_.window_ms) continue;
      if (!target[k].valid() || prev->start > target[k].start) {
        const int64_t prev_from = from ? from[prev - lv] : prev->start;
        if (!(*reached & (1u << k))) {
          *reached |= 1u << k;
          on_reach(k, *prev, prev_from);
        }
        target[k] = Path{prev->start, ts};
        if (from) target_from[k] = k == q_.from_step ? ts : prev_from;
      }
    }
    if ((steps & 1) && entry_ok) {
      target[0] = Path{ts, ts};
      if (from) target_from[0] = ts;
      if (!(*reached & 1)) {
        *reached |= 1;
        on_reach(0, target[0], ts);
      }
    }
    if (strict) {
      for (int k = 0; k < n_; k++) lv[k] = scratch[k];
      if (from)
        for (int k = 0; k < n_; k++) from[k] = scratch_from[k];
    }
    uint64_t excl = (tag >> kExclShift) & 0x7fffffffULL;
    while (excl) {
      int x = __builtin_ctzll(excl);
      excl &= excl - 1;
      const auto& ex = q_.exclusions[static_cast<size_t>(x)];
      for (int k = ex.from_step; k < ex.to_step; k++) lv[k].start = kNoPath;
    }
  }

  // Unordered funnels: the largest number of steps done within the window of an entry in
  // [from, to) (a maximum matching of steps to distinct events), 0 without an entry.
  int Unordered(const TimelineEntry* e, size_t count, int64_t from, int64_t to) const {
    const uint64_t step_bits = step_bits_;
    int best = 0;
    size_t window_first = 0;
    for (size_t i = 0; i < count && best < n_; i++) {
      if (!(e[i].tag & step_bits) || e[i].ts < from || e[i].ts >= to) continue;
      best = std::max(best, 1);
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
    return best;
  }

 private:
  // Best path that may advance to step k: at k-1, or skipping optional steps below k.
  const Path* Eff(const Path* lv, int k) const {
    const Path* best = nullptr;
    for (int j = k - 1; j >= 0; j--) {
      if (lv[j].valid() && (!best || lv[j].start > best->start)) best = &lv[j];
      if (!q_.steps[j].optional) break;
    }
    return best;
  }

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

  const FunnelQuery& q_;
  const int n_;
  const uint64_t step_bits_;
};

// Counts of one breakdown group, or of the total.
struct StepAgg {
  std::vector<uint64_t> count;
  std::vector<uint64_t> drop_count;
  std::vector<std::vector<int64_t>> conv;  // conversion times (ms) per step

  void Init(size_t n) {
    count.assign(n, 0);
    drop_count.assign(n, 0);
    conv.assign(n, {});
  }
  void Add(uint32_t reached) {
    const size_t n = count.size();
    for (size_t k = 0; k < n; k++) {
      if (reached & (1u << k)) {
        count[k]++;
      } else if (k > 0 && (reached & (1u << (k - 1)))) {
        drop_count[k]++;
      }
    }
  }
  void Merge(StepAgg& o) {
    for (size_t k = 0; k < count.size(); k++) {
      count[k] += o.count[k];
      drop_count[k] += o.drop_count[k];
      conv[k].insert(conv[k].end(), o.conv[k].begin(), o.conv[k].end());
    }
  }
};

// One unit's finished funnel over one entry range.
struct UnitOutcome {
  uint32_t person = 0;
  int32_t period = -1;  // -1: the whole range; else a "viz":"trends" entry period
  uint32_t reached = 0;
  uint32_t group = kNoGroup;
  int64_t ttc_ms = -1;  // time to convert; -1: not converted
  CorrelationWindow corr;
};

// "converted_limit": the persons who reached each step, kept apart from the pass (one Add
// per finished whole-range unit). Inactive without converted_limit: Add does nothing.
class ReachedPersons {
 public:
  ReachedPersons() = default;
  ReachedPersons(size_t steps, std::optional<size_t> limit) : limit_(limit) {
    if (limit_) persons_.assign(steps, {});
  }
  void Add(uint32_t reached, uint32_t person) {
    for (size_t k = 0; k < persons_.size(); k++) {
      if (!(reached & (1u << k))) continue;
      auto& v = persons_[k];
      v.push_back(person);
      // A person once per step, the smallest ids kept: the list stays short while scanning.
      if (*limit_ != 0 && v.size() >= 4 * *limit_) Trim(&v, *limit_);
    }
  }
  void Merge(const ReachedPersons& other) {
    for (size_t k = 0; k < persons_.size() && k < other.persons_.size(); k++)
      persons_[k].insert(persons_[k].end(), other.persons_[k].begin(), other.persons_[k].end());
  }
  // Sets every step's converted_persons (the smallest person ids first), if active.
  void Into(std::vector<FunnelStepResult>* steps, const PersonNamer& namer) {
    for (size_t k = 0; k < persons_.size() && k < steps->size(); k++) {
      auto& v = persons_[k];
      Trim(&v, *limit_ == 0 ? v.size() : *limit_);
      std::vector<std::string> names;
      names.reserve(v.size());
      for (uint32_t p : v) names.push_back(namer ? namer(p) : std::to_string(p));
      (*steps)[k].converted_persons = std::move(names);
    }
  }

 private:
  // Sorts v, removes repeats and keeps the `limit` smallest.
  static void Trim(std::vector<uint32_t>* v, size_t limit) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
    if (v->size() > limit) v->resize(limit);
  }
  std::optional<size_t> limit_;
  std::vector<std::vector<uint32_t>> persons_;  // per step, unsorted, maybe repeated (sessions)
};

// What one thread of the scan has finished.
struct SlotResult {
  StepAgg total;
  std::map<uint32_t, StepAgg> groups;               // per breakdown group
  std::vector<std::vector<uint32_t>> drop_persons;  // per step, unsorted, maybe repeated (sessions)
  ReachedPersons converted;                         // converted_limit
  std::vector<int64_t> ttc_ms;
  std::vector<uint64_t> period_counts;  // [period * steps + step]
  // Conversion times of whole-range sets as they were reached, and each set's breakdown
  // group once finished (by SetHead::serial): the group may change until then.
  struct Conv {
    uint32_t serial;
    uint32_t step;
    int64_t ms;
  };
  std::vector<Conv> convs;
  std::vector<uint32_t> group_of_serial;
};

std::vector<FunnelStepResult> StepResults(const FunnelQuery& q, StepAgg& g,
                                          const std::vector<std::vector<std::string>>* drop_persons) {
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
      // Summed exactly, so the average does not depend on the order the threads found the
      // times in (a double sum's last bits did, past 2^53 ms in all).
      __int128 sum = 0;
      for (int64_t x : v) sum += x;
      s.median_seconds_from_previous = med / 1000.0;
      s.average_seconds_from_previous = static_cast<double>(sum) / static_cast<double>(v.size()) / 1000.0;
    }
    if (k > 0) {
      s.dropoff_count = g.drop_count[k];
      if (drop_persons) s.dropoff_persons = (*drop_persons)[k];
    }
    steps.push_back(std::move(s));
  }
  return steps;
}

// Sorts v, removes repeats and keeps the `limit` smallest.
void SmallestDistinct(std::vector<uint32_t>* v, size_t limit) {
  std::sort(v->begin(), v->end());
  v->erase(std::unique(v->begin(), v->end()), v->end());
  if (v->size() > limit) v->resize(limit);
}

// One attempt set of the ordered/strict engine (see the file comment): the head, read on
// every event of its person, ...
struct SetHead {
  uint32_t reached = 0;
  uint32_t group = kNoGroup;
  uint32_t session = 0;
  uint32_t next = kNil;    // the person's next set
  uint32_t person = kNil;  // kNil: a free record
  int32_t period = -1;
  uint32_t serial = 0;  // whole-range sets: number among its thread's (conversion times)
  uint32_t slot = 0;    // the thread that works on it
};
// ... and what time to convert and correlation keep of it.
struct SetTail {
  int64_t ttc_ms = -1;      // from_step -> to_step on the path that first reached to_step
  int64_t first_entry = 0;  // correlation: window of a drop-off
  int64_t conv_entry = 0;   // correlation: entry and conversion of a converter
  int64_t conv_ts = -1;
};

// Records of attempt sets, each a SetHead, its n Paths, then (when asked for) n from_step
// instants and a SetTail, so a set's state is a few adjacent cache lines, as small as the
// query allows. Records live in chunks and never move; freed records are reused. The
// first chunk may be reserved: records [0, reserved) are taken by id (AllocReserved).
// Reserved ids share `ring` records (id % ring): the caller keeps at most one live id per
// record, as the person scan does when it finishes a tile's persons before the next tile
// (ring = the tile's size), so a thread's person records stay in its cache and are reused
// tile after tile; ring = reserved is the plain one-record-per-person arena. Reserved
// records are built only when taken, and whether one is live is a byte of its own: a
// funnel of 30 steps (32 + 16 x 30 bytes a person) pays neither for building every
// person's record up front nor for page faults over all of them.
class SetArena {
 public:
  SetArena(size_t n, bool with_from, bool with_tail, size_t reserved, size_t ring = 0)
      : n_(n),
        from_at_(sizeof(SetHead) + n * sizeof(Path)),
        tail_at_(from_at_ + (with_from ? n * sizeof(int64_t) : 0)),
        rec_(tail_at_ + (with_tail ? sizeof(SetTail) : 0)),
        with_from_(with_from),
        with_tail_(with_tail),
        reserved_(reserved),
        ring_mask_(std::bit_ceil(ring == 0 || ring > reserved ? reserved : ring) - 1) {
    // A power of two, at least the tile: ids of one tile still never share a record, and
    // the record of an id is a mask away, not a division.
    if (reserved) {
      chunks_.push_back(std::unique_ptr<std::byte[]>(new std::byte[(ring_mask_ + 1) * rec_]));  // not built: see above
      live_.assign(ring_mask_ + 1, 0);
    }
    count_ = reserved;
  }
  // Reserved record id, built afresh and live.
  uint32_t AllocReserved(uint32_t id) {
    Construct(Rec(id));
    live_[id & ring_mask_] = 1;
    return id;
  }
  bool Live(uint32_t id) { return id < reserved_ ? live_[id & ring_mask_] != 0 : head(id).person != kNil; }
  // A record beyond the reserved ones.
  uint32_t Alloc() {
    if (!free_.empty()) {
      const uint32_t id = free_.back();
      free_.pop_back();
      Reset(id);
      return id;
    }
    if (count_ - reserved_ == (chunks_.size() - (reserved_ ? 1 : 0)) * kChunk) AddChunk(kChunk);
    return static_cast<uint32_t>(count_++);
  }
  void Reset(uint32_t id) {
    head(id) = SetHead();
    std::fill(paths(id), paths(id) + n_, Path());
    if (with_tail_) *tail(id) = SetTail();
  }
  // Reserved records are not reused by Alloc.
  void Free(uint32_t id) {
    head(id).person = kNil;
    if (id < reserved_)
      live_[id & ring_mask_] = 0;
    else
      free_.push_back(id);
  }
  size_t size() const { return count_; }
  // The parts of record id, located once.
  struct View {
    SetHead* head;
    Path* paths;
    int64_t* from;  // null unless asked for
    SetTail* tail;  // null unless asked for
  };
  View view(uint32_t id) {
    std::byte* r = Rec(id);
    return {std::launder(reinterpret_cast<SetHead*>(r)), std::launder(reinterpret_cast<Path*>(r + sizeof(SetHead))),
            with_from_ ? std::launder(reinterpret_cast<int64_t*>(r + from_at_)) : nullptr,
            with_tail_ ? std::launder(reinterpret_cast<SetTail*>(r + tail_at_)) : nullptr};
  }
  SetHead& head(uint32_t id) { return *std::launder(reinterpret_cast<SetHead*>(Rec(id))); }
  Path* paths(uint32_t id) { return std::launder(reinterpret_cast<Path*>(Rec(id) + sizeof(SetHead))); }
  // Null unless asked for.
  int64_t* from(uint32_t id) {
    return with_from_ ? std::launder(reinterpret_cast<int64_t*>(Rec(id) + from_at_)) : nullptr;
  }
  SetTail* tail(uint32_t id) {
    return with_tail_ ? std::launder(reinterpret_cast<SetTail*>(Rec(id) + tail_at_)) : nullptr;
  }

 private:
  static constexpr size_t kChunk = 4096;
  [[gnu::always_inline]] std::byte* Rec(uint32_t id) {  // on every access to a set: inlined
    if (id < reserved_) return chunks_[0].get() + (id & ring_mask_) * rec_;
    const size_t j = id - reserved_;
    return chunks_[(reserved_ ? 1 : 0) + j / kChunk].get() + (j % kChunk) * rec_;
  }
  void AddChunk(size_t records) {
    chunks_.push_back(std::make_unique<std::byte[]>(records * rec_));
    std::byte* c = chunks_.back().get();
    for (size_t r = 0; r < records; r++) Construct(c + r * rec_);
  }
  void Construct(std::byte* rec) {
    new (rec) SetHead();
    for (size_t k = 0; k < n_; k++) new (rec + sizeof(SetHead) + k * sizeof(Path)) Path();
    for (size_t k = 0; with_from_ && k < n_; k++) new (rec + from_at_ + k * sizeof(int64_t)) int64_t(0);
    if (with_tail_) new (rec + tail_at_) SetTail();
  }
  static_assert(sizeof(SetHead) % alignof(Path) == 0 && sizeof(Path) % alignof(SetTail) == 0);

  const size_t n_, from_at_, tail_at_, rec_;
  const bool with_from_, with_tail_;
  const size_t reserved_, ring_mask_;
  size_t count_ = 0;
  std::vector<std::unique_ptr<std::byte[]>> chunks_;
  std::vector<uint32_t> free_;
  std::vector<uint8_t> live_;  // per reserved record
};

// The sets one thread works on. Ids below `dense` are the whole-range sets of persons in
// person mode, kept at their person's id in an arena shared by the threads (a person is
// only seen by one thread), so a person's state is where the person-ordered scan expects
// it; the other sets (entry periods, sessions) are the thread's own, at dense + index.
class SetStore {
 public:
  SetStore(SetArena* dense, size_t n, bool with_from, bool with_tail)
      : dense_(dense), own_(n, with_from, with_tail, 0), base_(dense ? dense->size() : 0) {}
  uint32_t AllocDense(uint32_t person) { return dense_->AllocReserved(person); }
  bool DenseLive(uint32_t person) { return dense_->Live(person); }
  uint32_t Alloc() { return static_cast<uint32_t>(base_ + own_.Alloc()); }
  void Free(uint32_t id) {
    if (id < base_)
      dense_->Free(id);
    else
      own_.Free(static_cast<uint32_t>(id - base_));
  }
  SetHead& head(uint32_t id) { return id < base_ ? dense_->head(id) : own_.head(static_cast<uint32_t>(id - base_)); }
  Path* paths(uint32_t id) { return id < base_ ? dense_->paths(id) : own_.paths(static_cast<uint32_t>(id - base_)); }
  SetArena::View view(uint32_t id) {
    return id < base_ ? dense_->view(id) : own_.view(static_cast<uint32_t>(id - base_));
  }
  int64_t* from(uint32_t id) { return id < base_ ? dense_->from(id) : own_.from(static_cast<uint32_t>(id - base_)); }
  SetTail* tail(uint32_t id) { return id < base_ ? dense_->tail(id) : own_.tail(static_cast<uint32_t>(id - base_)); }
  // The ids of the thread's own records (free ones included).
  size_t own_size() const { return own_.size(); }
  uint32_t own_id(size_t i) const { return static_cast<uint32_t>(base_ + i); }

 private:
  SetArena* dense_;
  SetArena own_;
  size_t base_;
};

}  // namespace

StatusOr<FunnelResult> RunFunnel(const FunnelQuery& q, const StoreSnapshot& snap, const TimeZone& tz,
                                 const PersonNamer& namer, const Deadline* deadline,
                                 std::vector<FunnelReach>* reaches) {
  const size_t n = q.steps.size();
  const int64_t entry_from = tz.DayStartMs(q.from_day), entry_to = tz.DayStartMs(q.to_day + 1);
  const int64_t scan_to = entry_to + q.window_ms + 1;
  const EventDict& dict = *snap.events;
  const PersonTable& pt = *snap.persons;
  const size_t np = pt.size();
  const bool strict = q.order == FunnelOrder::kStrict;
  const bool sessions = q.aggregate_by == FunnelAggregate::kSession;
  const bool want_ttc = q.viz == FunnelViz::kTimeToConvert;
  const bool want_corr = q.viz == FunnelViz::kCorrelation;
  // Rows that are not steps still matter to strict funnels (they break a sequence) and to
  // sessions without $session_id (they keep a session alive).
  const bool all_rows = strict || sessions;

  // Per event code, the steps/exclusions it can match (before filters).
  std::vector<uint64_t> by_code(dict.size() + 1, 0);
  uint64_t any_mask = 0, filtered = 0;
  std::vector<FilterSet> filters(n + q.exclusions.size());
  std::vector<EventMatcher> step_matchers;
  for (size_t k = 0; k < n + q.exclusions.size(); k++) {
    bool is_step = k < n;
    const std::string& name = is_step ? q.steps[k].event : q.exclusions[k - n].event;
    uint64_t bit = is_step ? (1ULL << k) : (1ULL << (kExclShift + (k - n)));
    EventMatcher m = EventMatcher::Make(name, dict);
    if (is_step) step_matchers.push_back(m);
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

  // First-ever steps: each person's first instant with an event matching the step, over
  // all stored history before the scan's end (a first occurrence after it cannot fill a
  // step). Several events at that instant all count as the first.
  std::vector<std::vector<int64_t>> first_ever(n);
  uint64_t first_ever_bits = 0;
  for (size_t k = 0; k < n; k++) {
    if (!q.steps[k].first_ever) continue;
    first_ever_bits |= 1ULL << k;
    first_ever[k].assign(np, INT64_MAX);
    const EventMatcher& m = step_matchers[k];
    if (m.none) continue;
    for (const auto& bp : snap.blocks) {
      const Block& b = *bp;
      if (b.size() == 0 || b.min_ts() >= scan_to || !m.MayMatch(b)) continue;
      if (deadline && deadline->Expired()) return deadline->ToStatus();
      const FilterSet::BlockEval ev = filters[k].empty() ? FilterSet::BlockEval() : filters[k].ForBlock(b);
      if (ev.always_false) continue;
      const auto& ts = b.ts();
      const auto& did = b.did();
      auto visit = [&](uint32_t i) {
        if (ts[i] >= scan_to || !ev.Match(i)) return;
        int64_t& first = first_ever[k][pt.PersonOf(did[i])];
        first = std::min(first, ts[i]);
      };
      if (m.any) {
        for (uint32_t i = 0; i < b.size(); i++) visit(i);
      } else {
        auto [rb, re] = b.EventRows(m.code);
        for (const uint32_t* r = rb; r && r < re; r++) visit(*r);
      }
    }
  }
  // Clears the first-ever steps of a row that is not its person's first such event.
  auto mask_first_ever = [&](uint64_t m, uint32_t person, int64_t ts) {
    for (uint64_t f = m & first_ever_bits; f; f &= f - 1) {
      const int k = __builtin_ctzll(f);
      if (first_ever[static_cast<size_t>(k)][person] != ts) m &= ~(1ULL << k);
    }
    return m;
  };

  // Rows that can be an entry: the first step, or (unordered) any step.
  const uint64_t entry_bits = q.order == FunnelOrder::kUnordered ? ((1ULL << n) - 1) : 1ULL;
  BreakdownResolver breakdown(q.breakdown, snap);
  BreakdownResolver session_ids({PropertyRef{"$session_id", false, "$session_id"}}, snap);
  // Rows whose breakdown value is read: entries (first touch), or every step row.
  const uint64_t group_bits = q.attribution == BreakdownAttribution::kFirstTouch ? entry_bits : ((1ULL << n) - 1);

  // Per-block state for tagging rows: filter evaluators, breakdown groups, session ids.
  struct BlockState {
    bool ready = false;
    bool skip = false;  // no row of the block can match
    std::vector<FilterSet::BlockEval> evals;
    BlockGroups groups;
    BlockGroups sids;
    const uint32_t* ev = nullptr;
    const uint32_t* did = nullptr;
    const int64_t* ts = nullptr;
  };
  auto prepare = [&](const Block& b, BlockState& st) {
    st.ready = true;
    if (!all_rows && !any_mask) {
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
    if (sessions) session_ids.ResolveBlock(b, &st.sids);
    st.ev = b.ev().data();
    st.did = b.did().data();
    st.ts = b.ts().data();
  };
  // Step and exclusion bits of row i: bit k = step k, bit 32+x = exclusion x (before
  // first-ever masking, which needs the row's person).
  auto tag_of = [&](const BlockState& st, size_t i) -> uint64_t {
    const uint32_t e = st.ev[i];
    uint64_t m = (e < by_code.size() ? by_code[e] : 0) | any_mask;
    for (uint64_t f = m & filtered; f;) {
      int k = __builtin_ctzll(f);
      f &= f - 1;
      size_t idx = k < kExclShift ? static_cast<size_t>(k) : n + static_cast<size_t>(k - kExclShift);
      if (!st.evals[idx].Match(i)) m &= ~(1ULL << k);
    }
    return m;
  };

  std::unique_ptr<FunnelPeriods> periods;
  if (q.viz == FunnelViz::kTrends) periods = std::make_unique<FunnelPeriods>(tz, q.from_day, q.to_day, q.interval);
  const size_t nperiods = periods ? periods->size() : 0;
  std::vector<CorrelationWindow> windows(want_corr ? np : 0);
  FunnelEvaluator eval(q);

  const int slots = q.order == FunnelOrder::kUnordered ? 1 : QueryThreads();
  std::vector<SlotResult> results(static_cast<size_t>(slots));
  for (SlotResult& r : results) {
    r.total.Init(n);
    r.drop_persons.assign(n, {});
    r.converted = ReachedPersons(n, q.converted_limit);
    r.period_counts.assign(nperiods * n, 0);
  }
  // Adds a finished unit to its thread's counts.
  auto finish = [&](const UnitOutcome& u, SlotResult& out) {
    if (u.period >= 0) {
      for (size_t k = 0; k < n; k++)
        if (u.reached & (1u << k)) out.period_counts[static_cast<size_t>(u.period) * n + k]++;
      return;
    }
    out.total.Add(u.reached);
    if (breakdown.active() && u.group != kNoGroup) {
      auto [it, ins] = out.groups.try_emplace(u.group);
      if (ins) it->second.Init(n);
      it->second.Add(u.reached);
    }
    for (size_t k = 1; k < n; k++) {
      if ((u.reached & (1u << k)) || !(u.reached & (1u << (k - 1)))) continue;
      auto& v = out.drop_persons[k];
      v.push_back(u.person);
      // Only the dropoff_limit smallest person ids are listed: keep the list short.
      if (q.dropoff_limit != 0 && v.size() >= 4 * q.dropoff_limit) SmallestDistinct(&v, q.dropoff_limit);
    }
    out.converted.Add(u.reached, u.person);
    if (u.ttc_ms >= 0) out.ttc_ms.push_back(u.ttc_ms);
    if (want_corr) windows[u.person] = u.corr;
  };

  // The per-person scans below (unordered, ordered and strict funnels): their parts in
  // person order and each block's state, prepared before any thread starts (breakdown
  // values are interned), and the event codes they visit (strict funnels, sessions and
  // "$any" steps need every row).
  auto person_scan_states = [&](const PersonOrderScan& scan) {
    std::vector<BlockState> states(scan.blocks().size());
    for (size_t b = 0; b < states.size(); b++) prepare(*scan.blocks()[b], states[b]);
    return states;
  };
  std::vector<uint32_t> needed_codes;
  for (uint32_t c = 0; c < by_code.size(); c++)
    if (by_code[c]) needed_codes.push_back(c);
  const std::vector<uint32_t>* codes = (all_rows || any_mask) ? nullptr : &needed_codes;

  if (q.order == FunnelOrder::kUnordered) {
    // Unordered funnels look at all events of a window at once: per-person timelines. With
    // sessions, aux is an id of the row's (breakdown group, session id) pair.
    std::vector<std::pair<uint32_t, uint32_t>> pairs;
    std::map<std::pair<uint32_t, uint32_t>, uint32_t> pair_ids;
    // A row's tag (steps; kOtherBit for a row that only marks a session gap) and aux; 0
    // skips the row.
    auto classify_row = [&](const BlockState& st, size_t i, uint32_t person, uint32_t* aux) -> uint64_t {
      uint64_t m = tag_of(st, i);
      if (m & first_ever_bits) m = mask_first_ever(m, person, st.ts[i]);
      const uint32_t group = (m & entry_bits) && breakdown.active() ? st.groups[i] : 0u;
      if (!sessions) {
        *aux = group;
        return m;
      }
      const uint32_t sid = st.sids[i];
      if (!(m & entry_bits) && sid != 0) return 0;  // no step, not needed for gaps
      if (!m) m = kOtherBit;
      auto [it, ins] = pair_ids.try_emplace({group, sid}, static_cast<uint32_t>(pairs.size()));
      if (ins) pairs.push_back({group, sid});
      *aux = it->second;
      return m;
    };
    const uint64_t order_mask = (1ULL << n) - 1;
    std::vector<std::string> group_keys;
    // (By value: a reference into the growing cache would dangle when the next call grows it.)
    auto group_key = [&](uint32_t g) -> std::string {
      while (group_keys.size() <= g)
        group_keys.push_back(breakdown.Value(static_cast<uint32_t>(group_keys.size())).dump());
      return group_keys[g];
    };
    // One unit's timeline (aux = breakdown group): the whole range, then each entry period.
    auto run_unit = [&](const TimelineEntry* e, size_t cnt, uint32_t person) {
      UnitOutcome u;
      u.person = person;
      const int best = eval.Unordered(e, cnt, entry_from, entry_to);
      if (best == 0) return;
      u.reached = static_cast<uint32_t>((1ULL << best) - 1);
      u.group = 0;
      if (breakdown.active()) {
        // First entry: the first in-range step event; among simultaneous ones, the smallest value.
        for (size_t j = 0; j < cnt; j++) {
          if (!(e[j].tag & entry_bits) || e[j].ts < entry_from || e[j].ts >= entry_to) continue;
          u.group = e[j].aux;
          for (size_t k = j + 1; k < cnt && e[k].ts == e[j].ts && e[k].order == e[j].order && e[k].tag == e[j].tag; k++)
            if ((e[k].tag & entry_bits) && group_key(e[k].aux) < group_key(u.group)) u.group = e[k].aux;
          break;
        }
      }
      finish(u, results[0]);
      if (!periods) return;
      int32_t last = -1;
      for (size_t j = 0; j < cnt; j++) {
        if (!(e[j].tag & entry_bits) || e[j].ts < entry_from || e[j].ts >= entry_to) continue;
        const int32_t b = periods->Of(e[j].ts);
        if (b == last) continue;  // entries are in time order: each period once
        last = b;
        UnitOutcome pu;
        pu.person = person;
        pu.period = b;
        const int64_t from = b == 0 ? entry_from : periods->EndMs(b - 1);
        pu.reached = static_cast<uint32_t>((1ULL << eval.Unordered(e, cnt, from, periods->EndMs(b))) - 1);
        finish(pu, results[0]);
      }
    };
    std::map<uint32_t, std::vector<TimelineEntry>> by_session;
    auto run_person = [&](uint32_t person, const TimelineEntry* e, size_t cnt) {
      if (!sessions) {
        run_unit(e, cnt, person);
        return;
      }
      // Split the person's timeline into sessions: $session_id, else runs of events
      // without one at most 30 minutes apart.
      by_session.clear();
      int64_t last_nosid = INT64_MIN;
      uint32_t gap_no = 0;
      for (size_t j = 0; j < cnt; j++) {
        auto [group, sid] = pairs[e[j].aux];
        if (sid == 0) {
          if (last_nosid != INT64_MIN && e[j].ts - last_nosid > kSessionGapMs) gap_no++;
          last_nosid = e[j].ts;
        }
        if (!(e[j].tag & entry_bits)) continue;
        TimelineEntry x = e[j];
        x.aux = group;
        by_session[sid ? sid : (kGapSession | gap_no)].push_back(x);
      }
      for (auto& [key, v] : by_session) run_unit(v.data(), v.size(), person);
    };
    // Each person's timeline, a tile of persons at a time (tile_timelines.h), on one thread:
    // the units' counts, breakdown keys and session pairs are shared.
    PersonOrderScan scan(snap, entry_from, scan_to);
    const std::vector<BlockState> states = person_scan_states(scan);
    ScanTimelines(
        scan, pt, /*slots=*/1, codes,
        [&](uint32_t b, uint32_t i, uint32_t* person, TimelineEntry* e) {
          const BlockState& st = states[b];
          if (st.skip) return false;
          const int64_t ts = st.ts[i];
          if (ts < entry_from || ts >= scan_to) return false;
          *person = pt.PersonOf(st.did[i]);
          uint32_t aux = 0;
          const uint64_t m = classify_row(st, i, *person, &aux);
          if (!m) return false;
          const uint64_t o = m & order_mask;
          *e = {ts, m, aux, o ? static_cast<uint32_t>(__builtin_ctzll(o)) : 64u};
          return true;
        },
        [&](int, uint32_t person, const TimelineEntry* e, size_t cnt) { run_person(person, e, cnt); }, deadline);
    if (deadline && deadline->fired()) return deadline->ToStatus();
  } else if (SequenceScanTuning().fast_paths && PlainFunnelApplies(q)) {
    // The plain funnel (no filters, breakdown, exclusions, sessions, optional or first-ever
    // steps): its own scan, several times faster (funnel_plain.h), the same answer.
    std::vector<PlainFunnelSlot> plain =
        ScanPlainFunnel(q, snap, entry_from, entry_to, scan_to, slots, reaches != nullptr, deadline,
                        [&](int slot, uint32_t person, uint32_t reached) {
                          UnitOutcome u;
                          u.person = person;
                          u.reached = reached;
                          u.group = 0;
                          finish(u, results[static_cast<size_t>(slot)]);
                        });
    if (deadline && deadline->fired()) return deadline->ToStatus();
    for (size_t slot = 0; slot < plain.size(); slot++) {
      SlotResult& out = results[slot];
      for (size_t k = 0; k < n; k++) out.total.conv[k] = std::move(plain[slot].conv[k]);
      if (reaches) reaches->insert(reaches->end(), plain[slot].reaches.begin(), plain[slot].reaches.end());
    }
  } else {
    // Ordered and strict funnels: one streaming pass in per-person time order with the
    // attempt sets of every person in per-thread pools (see person_scan.h).
    PersonOrderScan scan(snap, entry_from, scan_to);
    const std::vector<BlockState> states = person_scan_states(scan);
    std::vector<std::string> group_keys_snapshot;
    if (breakdown.active())
      for (uint32_t g = 0; g < breakdown.groups(); g++) group_keys_snapshot.push_back(breakdown.Value(g).dump());
    const uint64_t step_mask = (1ULL << n) - 1;
    struct Tie {
      uint32_t order;
      uint64_t tag;
      uint32_t aux;  // breakdown group
      uint32_t sid;  // $session_id value id (sessions), 0 if none
    };
    std::vector<uint32_t> first_set(np, kNil);  // per person: its first live set
    std::vector<int64_t> last_nosid(sessions ? np : 0, INT64_MIN);
    std::vector<uint32_t> gap_no(sessions ? np : 0, 0);
    // Person mode: the whole-range sets at their person's id.
    const bool with_from = want_ttc && q.from_step > 0, with_tail = want_ttc || want_corr;
    // Person mode: each thread's whole-range sets at their person's id, in a ring of one
    // tile's records (finished at the end of each tile, below).
    std::vector<std::unique_ptr<SetArena>> dense_by_slot(static_cast<size_t>(slots));
    const bool dense = !sessions;
    if (dense)
      for (auto& d : dense_by_slot)
        d = std::make_unique<SetArena>(n, with_from, with_tail, np, SequenceScanTuning().tile_persons);
    std::vector<SetStore> pools;
    for (int i = 0; i < slots; i++)
      pools.emplace_back(dense_by_slot[static_cast<size_t>(i)].get(), n, with_from, with_tail);
    std::vector<std::vector<Path>> scratch_by_slot(static_cast<size_t>(slots), std::vector<Path>(n));
    std::vector<std::vector<FunnelReach>> reaches_by_slot(reaches ? static_cast<size_t>(slots) : 0);
    std::vector<std::vector<int64_t>> scratch_from_by_slot(static_cast<size_t>(slots), std::vector<int64_t>(n));

    auto finish_set = [&](SetStore& pool, uint32_t s, SlotResult& out) {
      const SetHead& h = pool.head(s);
      UnitOutcome u;
      u.person = h.person;
      u.period = h.period;
      u.reached = h.reached;
      u.group = breakdown.active() ? h.group : 0;
      const SetTail* t = pool.tail(s);
      if (t) u.ttc_ms = t->ttc_ms;
      if (h.period < 0) {
        if (out.group_of_serial.size() <= h.serial) out.group_of_serial.resize(h.serial + 1, kNoGroup);
        out.group_of_serial[h.serial] = u.group;
      }
      if (want_corr) {
        const bool converted = h.reached & (1u << (n - 1));
        u.corr.outcome = converted ? CorrelationWindow::kSuccess : CorrelationWindow::kFailure;
        u.corr.from = converted ? t->conv_entry : t->first_entry;
        u.corr.to = converted ? t->conv_ts : t->first_entry + q.window_ms;
      }
      finish(u, out);
    };
    // Finishes and unlinks the sets of person p for which done(head) holds.
    auto finish_sets = [&](SetStore& pool, SlotResult& out, uint32_t p, auto&& done) {
      uint32_t* link = &first_set[p];
      while (*link != kNil) {
        const uint32_t s = *link;
        SetHead& h = pool.head(s);
        if (!done(h)) {
          link = &h.next;
          continue;
        }
        *link = h.next;
        finish_set(pool, s, out);
        pool.Free(s);
      }
    };
    // The set of (session, period) of person p, created if missing.
    std::vector<uint32_t> serials(static_cast<size_t>(slots), 0);
    // The set of (session, period) of person p, created if missing (entries at ts). Before
    // creating one, the person's sets that are final at ts are finished (their last entry +
    // window is past), so a person keeps about window / period + 2 sets.
    auto ensure_set = [&](SetStore& pool, SlotResult& out, int slot, uint32_t p, uint32_t session, int32_t period,
                          int64_t ts) -> uint32_t {
      if (dense && period < 0) {
        if (pool.DenseLive(p)) return p;
      } else {
        for (uint32_t s = first_set[p]; s != kNil; s = pool.head(s).next)
          if (pool.head(s).session == session && pool.head(s).period == period) return s;
      }
      finish_sets(pool, out, p, [&](const SetHead& h) {
        return (h.period < 0 ? entry_to : periods->EndMs(h.period)) - 1 + q.window_ms < ts;
      });
      const uint32_t s = dense && period < 0 ? pool.AllocDense(p) : pool.Alloc();
      SetHead& h = pool.head(s);
      h.person = p;
      h.session = session;
      h.period = period;
      h.slot = static_cast<uint32_t>(slot);
      if (period < 0) h.serial = serials[static_cast<size_t>(slot)]++;
      h.next = first_set[p];
      first_set[p] = s;
      return s;
    };

    ScanPersonGroups<Tie>(
        scan, pt, slots, codes,
        [&](uint32_t b, uint32_t i, uint32_t* person, int64_t* ts_out, Tie* tie) {
          const BlockState& st = states[b];
          if (st.skip) return false;
          const int64_t ts = st.ts[i];
          if (ts < entry_from || ts >= scan_to) return false;
          uint64_t m = tag_of(st, i);
          if (m & first_ever_bits) m = mask_first_ever(m, pt.PersonOf(st.did[i]), ts);
          const uint32_t sid = sessions ? st.sids[i] : 0;
          if (!m) {
            // Not a step: strict funnels need it; sessions need it to measure gaps.
            if (!strict && !(sessions && sid == 0)) return false;
            m = kOtherBit;
          }
          *person = pt.PersonOf(st.did[i]);
          *ts_out = ts;
          const uint64_t sm = m & step_mask;
          *tie = {sm ? static_cast<uint32_t>(__builtin_ctzll(sm)) : 64u, m,
                  (m & group_bits) && breakdown.active() ? st.groups[i] : 0u, sid};
          return true;
        },
        [&](int slot, uint32_t p, int64_t ts, std::vector<Tie>& ties) {
          if (ties.size() > 1)
            std::sort(ties.begin(), ties.end(), [&](const Tie& a, const Tie& b) {
              if (a.order != b.order) return a.order < b.order;
              if (a.tag != b.tag) return a.tag < b.tag;
              return a.aux != b.aux && group_keys_snapshot[a.aux] < group_keys_snapshot[b.aux];
            });
          SetStore& pool = pools[static_cast<size_t>(slot)];
          SlotResult& out = results[static_cast<size_t>(slot)];
          Path* scratch = scratch_by_slot[static_cast<size_t>(slot)].data();
          int64_t* scratch_from = scratch_from_by_slot[static_cast<size_t>(slot)].data();
          // Applies tie t to set s.
          auto apply_view = [&](const SetArena::View& v, const Tie& t, bool entry_ok) {
            SetHead& h = *v.head;
            SetTail* tail = v.tail;
            eval.Apply(v.paths, v.from, scratch, scratch_from, &h.reached, ts, t.tag, entry_ok,
                       [&](int k, const Path& prev, int64_t prev_from) {
                         if (k > 0 && h.period < 0)
                           out.convs.push_back({h.serial, static_cast<uint32_t>(k), ts - prev.last_done});
                         if (reaches && h.period < 0)
                           reaches_by_slot[static_cast<size_t>(slot)].push_back({p, static_cast<uint32_t>(k), ts});
                         switch (q.attribution) {
                           case BreakdownAttribution::kFirstTouch:
                             if (k == 0) h.group = t.aux;
                             break;
                           case BreakdownAttribution::kLastTouch:  // deeper than any step reached before
                             if ((h.reached & ~(1u << k)) < (1u << k)) h.group = t.aux;
                             break;
                           case BreakdownAttribution::kStep:
                             if (k == q.attribution_step) h.group = t.aux;
                             break;
                         }
                         if (!tail) return;
                         if (k == 0) tail->first_entry = ts;
                         if (want_ttc && k == q.to_step) tail->ttc_ms = ts - prev_from;
                         if (k == static_cast<int>(n) - 1) {
                           tail->conv_entry = prev.start;
                           tail->conv_ts = ts;
                         }
                       });
          };
          auto apply = [&](uint32_t s, const Tie& t, bool entry_ok) { apply_view(pool.view(s), t, entry_ok); };
          if (!sessions && !periods) {
            // One set per person, at the person's id, final at the end of the person's tile.
            SetArena& own_dense = *dense_by_slot[static_cast<size_t>(slot)];
            const SetArena::View v = own_dense.view(p);
            for (const Tie& t : ties) {
              const bool entry = (t.tag & 1) && ts >= entry_from && ts < entry_to;
              if (!own_dense.Live(p)) {
                if (!entry) continue;
                ensure_set(pool, out, slot, p, 0, -1, ts);
              }
              apply_view(v, t, entry);
            }
            return;
          }
          uint32_t gap_key = 0;
          if (sessions) {
            bool no_sid = false;
            for (const Tie& t : ties) no_sid |= t.sid == 0;
            if (no_sid) {
              if (last_nosid[p] != INT64_MIN && ts - last_nosid[p] > kSessionGapMs) {
                // The run of events without $session_id ended: its sets are final.
                const uint32_t ended = kGapSession | gap_no[p];
                finish_sets(pool, out, p, [&](const SetHead& h) { return h.session == ended; });
                gap_no[p] = (gap_no[p] + 1) & ~kGapSession;
              }
              last_nosid[p] = ts;
            }
            gap_key = kGapSession | gap_no[p];
          }
          for (const Tie& t : ties) {
            const uint32_t key = sessions ? (t.sid ? t.sid : gap_key) : 0;
            const bool entry = (t.tag & 1) && ts >= entry_from && ts < entry_to;
            int32_t period = -1;
            uint32_t whole = kNil, own_period = kNil;  // the sets this entry goes to
            if (entry) {
              whole = ensure_set(pool, out, slot, p, key, -1, ts);
              if (periods) {
                period = periods->Of(ts);
                own_period = ensure_set(pool, out, slot, p, key, period, ts);
              }
            }
            if (!strict && !(t.tag & ~(1ULL | kOtherBit))) {
              // Only an entry (or nothing): no other set of the person can change.
              if (whole != kNil) apply(whole, t, true);
              if (own_period != kNil) apply(own_period, t, true);
              continue;
            }
            for (uint32_t s = first_set[p]; s != kNil; s = pool.head(s).next) {
              const SetHead& h = pool.head(s);
              if (h.session == key) apply(s, t, entry && (h.period < 0 || h.period == period));
            }
          }
        },
        deadline,
        [&](int slot, uint32_t p_lo, uint32_t p_hi) {
          // The tile's persons have no rows left: their whole-range sets are final, and
          // their records free for the next tile.
          if (!dense) return;
          SetArena& own_dense = *dense_by_slot[static_cast<size_t>(slot)];
          SetStore& pool = pools[static_cast<size_t>(slot)];
          for (uint32_t p = p_lo; p < p_hi; p++) {
            if (!own_dense.Live(p)) continue;
            finish_set(pool, p, results[static_cast<size_t>(slot)]);
            own_dense.Free(p);
          }
        });
    if (deadline && deadline->fired()) return deadline->ToStatus();
    for (auto& r : reaches_by_slot) reaches->insert(reaches->end(), r.begin(), r.end());
    // The sets still open at the end of the scan (entry periods, sessions).
    for (size_t slot = 0; slot < pools.size(); slot++) {
      SetStore& pool = pools[slot];
      for (size_t i = 0; i < pool.own_size(); i++)
        if (pool.head(pool.own_id(i)).person != kNil) finish_set(pool, pool.own_id(i), results[slot]);
    }
  }
  if (deadline && deadline->fired()) return deadline->ToStatus();

  // Conversion times into the total and their set's group.
  for (SlotResult& r : results) {
    for (const SlotResult::Conv& c : r.convs) {
      r.total.conv[c.step].push_back(c.ms);
      const uint32_t g = c.serial < r.group_of_serial.size() ? r.group_of_serial[c.serial] : kNoGroup;
      if (breakdown.active() && g != kNoGroup) r.groups[g].conv[c.step].push_back(c.ms);
    }
  }
  // Merge the threads' counts (in thread order: the same answer every run).
  SlotResult& all = results[0];
  for (size_t s = 1; s < results.size(); s++) {
    SlotResult& r = results[s];
    all.total.Merge(r.total);
    for (auto& [g, a] : r.groups) {
      auto [it, ins] = all.groups.try_emplace(g);
      if (ins) it->second.Init(n);
      it->second.Merge(a);
    }
    for (size_t k = 0; k < n; k++)
      all.drop_persons[k].insert(all.drop_persons[k].end(), r.drop_persons[k].begin(), r.drop_persons[k].end());
    all.converted.Merge(r.converted);
    all.ttc_ms.insert(all.ttc_ms.end(), r.ttc_ms.begin(), r.ttc_ms.end());
    for (size_t i = 0; i < all.period_counts.size(); i++) all.period_counts[i] += r.period_counts[i];
  }
  // Drop-off persons: the first dropoff_limit by person id (a person once, even with
  // several sessions dropping off).
  std::vector<std::vector<std::string>> drop_names(n);
  for (size_t k = 1; k < n; k++) {
    auto& v = all.drop_persons[k];
    SmallestDistinct(&v, q.dropoff_limit == 0 ? v.size() : q.dropoff_limit);
    for (uint32_t p : v) drop_names[k].push_back(namer ? namer(p) : std::to_string(p));
  }

  FunnelResult out;
  out.timezone = tz.name();
  out.order = q.order;
  out.window_seconds = q.window_ms / 1000;
  out.date_from = q.from_day;
  out.date_to = q.to_day;
  out.viz = q.viz;
  out.aggregate_by = q.aggregate_by;
  out.steps = StepResults(q, all.total, &drop_names);
  all.converted.Into(&out.steps, namer);
  if (breakdown.active()) {
    out.attribution = q.attribution;
    out.attribution_step = q.attribution_step;
    std::vector<std::pair<uint32_t, StepAgg*>> order;
    for (auto& [g, a] : all.groups) order.push_back({g, &a});
    std::stable_sort(order.begin(), order.end(),
                     [](auto& a, auto& b) { return a.second->count[0] > b.second->count[0]; });
    if (order.size() > q.breakdown_limit) order.resize(q.breakdown_limit);
    for (auto& [g, a] : order) out.breakdowns.push_back({breakdown.Value(g), StepResults(q, *a, nullptr)});
  }
  if (want_ttc) out.time_to_convert = TimeToConvertHistogram(q.from_step, q.to_step, std::move(all.ttc_ms), q.bins);
  if (periods) {
    FunnelTrends t;
    t.interval = q.interval;
    t.from_step = q.from_step;
    t.to_step = q.to_step;
    for (size_t b = 0; b < nperiods; b++) {
      t.days.push_back(periods->LabelDay(static_cast<int32_t>(b)));
      t.step_counts.emplace_back(all.period_counts.begin() + static_cast<ptrdiff_t>(b * n),
                                 all.period_counts.begin() + static_cast<ptrdiff_t>((b + 1) * n));
    }
    out.trends = std::move(t);
  }
  if (want_corr) {
    NS_ASSIGN_OR_RETURN(FunnelCorrelation c, RunFunnelCorrelation(q, snap, windows, entry_from, scan_to, deadline));
    out.correlation = std::move(c);
  }
  return out;
}

// ---------------------------------------------------------------- registration

namespace {

// The answer as a table (CLI, exports): the visualisation's table when there is one, else
// the steps.
ResultTable FunnelTable(const json& r) {
  if (r.contains("time_to_convert")) {
    ResultTable rows{{"from s", "to s", "count"}};
    for (const auto& b : r["time_to_convert"]["bins"]) rows.push_back({b["from_seconds"], b["to_seconds"], b["count"]});
    return rows;
  }
  if (r.contains("trends")) {
    const json& t = r["trends"];
    ResultTable rows{{"date", "from count", "to count", "conversion"}};
    for (size_t i = 0; i < t["dates"].size(); i++)
      rows.push_back({t["dates"][i], t["from_counts"][i], t["to_counts"][i], t["conversion_rates"][i]});
    return rows;
  }
  if (r.contains("correlation")) {
    ResultTable rows{{"event or property", "value", "success", "failure", "odds ratio", "type"}};
    for (const char* list : {"events", "properties"})
      for (const auto& e : r["correlation"][list])
        rows.push_back({e.contains("event") ? e["event"] : e["property"], e.value("value", json()), e["success_count"],
                        e["failure_count"], e["odds_ratio"], e["correlation_type"]});
    return rows;
  }
  ResultTable rows{{"step", "event", "count", "from start", "from previous", "median s"}};
  for (const auto& s : r["steps"])
    rows.push_back({s["order"], s["label"], s["count"], s["conversion_from_start"], s["conversion_from_previous"],
                    s["median_seconds_from_previous"]});
  return rows;
}

}  // namespace

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
                            FunnelTable};

}  // namespace ns
