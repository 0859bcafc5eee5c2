// The plain funnel's scan (funnel_plain.h). Semantics are funnel.cc's (docs/queries.md
// §Funnels); this file only computes them with less work per row. Why it is fast, against
// the general engine:
// - A row's steps are one table look-up by its event code (a step per code of the project's
//   dictionary), read straight from the decoded event-code column. Only the timestamp and
//   distinct-id columns are read besides, and only at step rows (strict funnels: every row,
//   since any event breaks a sequence). Other columns are never decoded.
// - No per-row callback, tie vector, attempt-set record or pool: a person's state is, per
//   step, the entry time of the best path at that step (the latest entry: it leaves the
//   most window) and the time of its step's event, plus the steps reached: 16 bytes a step
//   and 4 in a per-thread array holding one tile of persons, cleared when the tile is done.
// - Ordered funnels take a tile's slice of a day part in two passes: the step rows'
//   positions and steps without a branch per row, then those rows with selects instead of
//   branches (whether a row is a step, and whether it extends a path, are as good as
//   random: branches were mispredicted on a large part of the rows). Both passes prefetch
//   their columns ahead: a slice is too short for the hardware prefetcher to ramp up.
// - Persons are split across the query threads and walked in tiles, as ScanPersonGroups
//   does (person_scan.h): every day part over one tile before the next, so a person's state
//   stays in the core's cache across all its days.
// - Rows of one person at one instant (rare) are the only rows grouped and ordered (earlier
//   steps first, as the timeline order says): a row is applied at once unless the next row
//   has the same instant and person.
#include "query/funnel_plain.h"

#include <algorithm>
#include <bit>
#include <optional>

#include "query/part_rows.h"
#include "query/person_scan.h"
#include "query/scan.h"

namespace ns {

bool PlainFunnelApplies(const FunnelQuery& q) {
  if (q.order != FunnelOrder::kOrdered && q.order != FunnelOrder::kStrict) return false;
  if (!q.filters.empty() || !q.breakdown.empty() || !q.exclusions.empty()) return false;
  if (q.viz != FunnelViz::kSteps || q.aggregate_by != FunnelAggregate::kPerson) return false;
  if (q.steps.empty() || q.steps.size() > 32) return false;
  for (const FunnelStep& s : q.steps)
    if (!s.filters.empty() || s.optional || s.first_ever || s.event == kAnyEvent) return false;
  return true;
}

namespace {

constexpr int64_t kNoPath = INT64_MIN;
constexpr uint32_t kOther = 0;  // the step mask of a row that is no step

struct Path {
  int64_t start = kNoPath;  // entry ts of the best path at this step; kNoPath: none
  int64_t last_done = 0;    // ts of this step's event on that path
};

// What the threads share (read-only).
struct Setup {
  std::vector<uint32_t> step_mask;  // per event code: bit k = step k
  // Per event code: its one step, kNoStep, or kManySteps (several steps name the event);
  // one more entry (kNoStep) than codes, where codes beyond the table are clamped.
  std::vector<int8_t> step_of;
  size_t n = 0;
  int64_t window_ms = 0, entry_from = 0, entry_to = 0, scan_to = 0;
  const PersonTable* persons = nullptr;
  bool want_reaches = false;
};
constexpr int8_t kNoStep = -1, kManySteps = -2;
// How far ahead the second pass asks for a step row's columns (the first pass: the Rows'
// kEvAhead, part_rows.h).
constexpr size_t kPrefetchSteps = 16;

// One thread's scan: the state of one tile of persons at a time. A person who has not
// entered has every path absent (kNoPath): events can only extend paths that exist, so
// their state stays so without a check, and a person's paths are cleared when the tile
// that finished them is done.
class SlotScanner {
 public:
  SlotScanner(const Setup& s, PlainFunnelSlot* out, int slot, const PlainFunnelFinish& finish, uint32_t tile_capacity)
      : s_(s),
        out_(out),
        slot_(slot),
        finish_(finish),
        paths_(tile_capacity * s.n),
        reached_(tile_capacity, 0),
        scratch_(s.n) {}

  void BeginTile(uint32_t first_person) { tile_first_ = first_person; }

  // Applies rows [first, last) of a part (rows of this tile's persons only, in person then
  // time order). check_range: rows may lie outside [entry_from, scan_to).
  template <bool kStrict, typename Rows>
  void Scan(const Rows& rows, size_t first, size_t last, bool check_range) {
    if (kStrict)
      ScanStrict(rows, first, last, check_range);
    else
      ScanOrdered(rows, first, last, check_range);
  }

  // The tile's persons have no rows left: their outcome is final.
  void FinishTile(uint32_t end_person) {
    const uint32_t count = end_person - tile_first_;
    for (uint32_t i = 0; i < count; i++) {
      if (!reached_[i]) continue;
      finish_(slot_, tile_first_ + i, reached_[i]);
      reached_[i] = 0;
      std::fill(&paths_[i * s_.n], &paths_[i * s_.n] + s_.n, Path());
    }
  }

 private:
  template <typename Rows>
  void ScanOrdered(const Rows& rows, size_t first, size_t last, bool check_range) {
    // First the positions and steps of the step rows, without a branch per row (whether a
    // row is a step is as good as random: a branch would be mispredicted on many rows) ...
    const int8_t* step_of = s_.step_of.data();
    const uint32_t top = static_cast<uint32_t>(s_.step_of.size() - 1);
    if (pos_.size() < last - first) {
      pos_.resize(last - first);
      steps_.resize(last - first);
    }
    uint32_t* pos = pos_.data();
    int8_t* steps = steps_.data();
    size_t count = 0;
    for (size_t i = first; i < last; i++) {
      if (i + Rows::kEvAhead < last) rows.PrefetchEv(i + Rows::kEvAhead);
      const int8_t k = step_of[std::min(rows.Ev(i), top)];
      pos[count] = static_cast<uint32_t>(i);
      steps[count] = k;
      count += k != kNoStep;
    }
    // ... then those rows: their instant, person and step. What the loop reads is in locals
    // (stores into the paths, int64, could otherwise alias the setup's fields).
    const int64_t window = s_.window_ms, entry_from = s_.entry_from, entry_to = s_.entry_to, scan_to = s_.scan_to;
    const uint32_t* person_of = s_.persons->person_of().data();
    const uint32_t mapped = static_cast<uint32_t>(s_.persons->person_of().size());
    auto person_at = [&](size_t i) {
      const uint32_t did = rows.Did(i);
      return did < mapped ? person_of[did] : did;
    };
    const size_t n = s_.n;
    Path* paths = paths_.data();
    uint32_t* reached = reached_.data();
    const uint32_t tile_first = tile_first_;
    for (size_t j = 0; j < count; j++) {
      if (j + kPrefetchSteps < count) rows.PrefetchStep(pos[j + kPrefetchSteps]);
      const size_t i = pos[j];
      const int64_t ts = rows.Ts(i);
      if (check_range && (ts < entry_from || ts >= scan_to)) continue;
      const uint32_t person = person_at(i);
      if (i + 1 < last && rows.Ts(i + 1) == ts && person_at(i + 1) == person) [[unlikely]] {
        const size_t group_last = ApplyTies<false>(rows, i, last, person, ts);
        while (j + 1 < count && pos[j + 1] <= group_last) j++;
        continue;
      }
      const int k = steps[j];
      if (k < 0) [[unlikely]] {  // an event of several steps
        Apply<false>(person, ts, s_.step_mask[rows.Ev(i)]);
        continue;
      }
      // Apply<false> for an event of one step k, with selects instead of branches (whether
      // an event extends a path is as good as random too): the path it extends is the best
      // at k-1, or for the first step a new one at ts.
      const size_t idx = person - tile_first;
      Path* lv = paths + idx * n;
      const bool entry = (ts >= entry_from) & (ts < entry_to);
      const int64_t cand = k > 0 ? lv[k > 0 ? k - 1 : 0].start : (entry ? ts : kNoPath);
      const Path cur = lv[k];
      const bool ok = (cand != kNoPath) &
                      (static_cast<uint64_t>(ts) - static_cast<uint64_t>(cand) <= static_cast<uint64_t>(window)) &
                      ((cand > cur.start) | (k == 0));
      lv[k].start = ok ? cand : cur.start;
      lv[k].last_done = ok ? ts : cur.last_done;
      const uint32_t bit = 1u << k;
      if (ok && !(reached[idx] & bit)) [[unlikely]] {
        reached[idx] |= bit;
        if (k > 0) out_->conv[static_cast<size_t>(k)].push_back(ts - lv[k - 1].last_done);
        if (s_.want_reaches) out_->reaches.push_back({person, static_cast<uint32_t>(k), ts});
      }
    }
  }

  template <typename Rows>
  void ScanStrict(const Rows& rows, size_t first, size_t last, bool check_range) {
    const uint32_t* mask_of = s_.step_mask.data();
    const size_t codes = s_.step_mask.size();
    for (size_t i = first; i < last; i++) {
      const int64_t ts = rows.Ts(i);
      if (check_range && (ts < s_.entry_from || ts >= s_.scan_to)) continue;
      const uint32_t person = s_.persons->PersonOf(rows.Did(i));
      if (i + 1 < last && rows.Ts(i + 1) == ts && s_.persons->PersonOf(rows.Did(i + 1)) == person) {
        i = ApplyTies<true>(rows, i, last, person, ts);
        continue;
      }
      const uint32_t code = rows.Ev(i);
      Apply<true>(person, ts, code < codes ? mask_of[code] : kOther);
    }
  }

  // The rows from i on with the person's instant ts, in timeline order (lowest step first,
  // then by mask; rows that are no step last); returns the position of the last.
  template <bool kStrict, typename Rows>
  size_t ApplyTies(const Rows& rows, size_t i, size_t last, uint32_t person, int64_t ts) {
    ties_.clear();
    size_t j = i;
    for (; j < last && rows.Ts(j) == ts; j++) {
      if (s_.persons->PersonOf(rows.Did(j)) != person) break;
      const uint32_t code = rows.Ev(j);
      const uint32_t mask = code < s_.step_mask.size() ? s_.step_mask[code] : kOther;
      if (kStrict || mask != kOther) ties_.push_back(mask);
    }
    auto order = [](uint32_t m) { return m == kOther ? 64u : static_cast<uint32_t>(__builtin_ctz(m)); };
    std::sort(ties_.begin(), ties_.end(),
              [&](uint32_t a, uint32_t b) { return order(a) != order(b) ? order(a) < order(b) : a < b; });
    for (uint32_t m : ties_) Apply<kStrict>(person, ts, m);
    return j - 1;
  }

  // One event of the person (in timeline order), as funnel.cc's FunnelEvaluator::Apply
  // without optional steps, exclusions and breakdowns: an event of step k extends the
  // best path at k-1 if it is within the window of that path's entry (steps highest
  // first, so one event fills one step per path); a first-step event in the entry range
  // starts a path. Strict: the event's own extensions are all that survive it.
  template <bool kStrict>
  void Apply(uint32_t person, int64_t ts, uint32_t mask) {
    const size_t idx = person - tile_first_;
    uint32_t& reached = reached_[idx];
    Path* lv = &paths_[idx * s_.n];
    const bool entry = (mask & 1) && ts >= s_.entry_from && ts < s_.entry_to;
    if (!reached && !entry) return;  // no path, and none to start
    Path* target = lv;
    if (kStrict) {
      if (mask == kOther) {  // another event: every path breaks
        for (size_t k = 0; k < s_.n; k++) lv[k].start = kNoPath;
        return;
      }
      target = scratch_.data();
      std::fill(target, target + s_.n, Path());
    }
    for (uint32_t m = mask & ~1u; m;) {
      const int k = 31 - __builtin_clz(m);
      m &= ~(1u << k);
      const Path& prev = lv[k - 1];
      if (prev.start == kNoPath || ts - prev.start > s_.window_ms || prev.start <= target[k].start) continue;
      if (!(reached & (1u << k))) {
        reached |= 1u << k;
        out_->conv[static_cast<size_t>(k)].push_back(ts - prev.last_done);
        if (s_.want_reaches) out_->reaches.push_back({person, static_cast<uint32_t>(k), ts});
      }
      target[k] = Path{prev.start, ts};
    }
    if (entry) {
      target[0] = Path{ts, ts};
      if (!(reached & 1)) {
        reached |= 1;
        if (s_.want_reaches) out_->reaches.push_back({person, 0, ts});
      }
    }
    if (kStrict) std::copy(target, target + s_.n, lv);
  }

  const Setup& s_;
  PlainFunnelSlot* out_;
  const int slot_;
  const PlainFunnelFinish& finish_;
  uint32_t tile_first_ = 0;
  std::vector<Path> paths_;        // [person in tile * n + step]; all absent until the person enters
  std::vector<uint32_t> reached_;  // per person in tile; 0: not entered
  std::vector<Path> scratch_;      // strict: the paths after the current event
  std::vector<uint32_t> ties_;
  std::vector<uint32_t> pos_;  // ordered: positions of a part's step rows ...
  std::vector<int8_t> steps_;  // ... and their steps
};

}  // namespace

std::vector<PlainFunnelSlot> ScanPlainFunnel(const FunnelQuery& q, const StoreSnapshot& snap, int64_t entry_from,
                                             int64_t entry_to, int64_t scan_to, int slots, bool want_reaches,
                                             const Deadline* deadline, const PlainFunnelFinish& finish) {
  const bool strict = q.order == FunnelOrder::kStrict;
  const EventDict& dict = *snap.events;
  const PersonTable& pt = *snap.persons;
  Setup setup;
  setup.n = q.steps.size();
  setup.window_ms = q.window_ms;
  setup.entry_from = entry_from;
  setup.entry_to = entry_to;
  setup.scan_to = scan_to;
  setup.persons = &pt;
  setup.want_reaches = want_reaches;
  setup.step_mask.assign(dict.size() + 1, 0);
  for (size_t k = 0; k < setup.n; k++) {
    const EventMatcher m = EventMatcher::Make(q.steps[k].event, dict);
    if (!m.none && m.code < setup.step_mask.size()) setup.step_mask[m.code] |= 1u << k;
  }
  setup.step_of.assign(setup.step_mask.size() + 1, kNoStep);
  for (size_t c = 0; c < setup.step_mask.size(); c++) {
    const uint32_t m = setup.step_mask[c];
    if (m) setup.step_of[c] = std::popcount(m) == 1 ? static_cast<int8_t>(__builtin_ctz(m)) : kManySteps;
  }

  PersonOrderScan scan(snap, entry_from, scan_to);
  const auto& blocks = scan.blocks();
  const auto& parts = scan.parts();
  // Parts worth reading (ordered funnels skip a one-block part without a step event), and
  // the blocks they read.
  std::vector<uint8_t> read_part(parts.size(), 0), read_block(blocks.size(), 0);
  for (size_t j = 0; j < parts.size(); j++) {
    const auto& part = parts[j];
    if (part.whole_block < 0) {
      read_part[j] = 1;
      for (const auto& [b, r] : part.rows) read_block[b] = 1;
      continue;
    }
    const Block& b = *blocks[static_cast<size_t>(part.whole_block)];
    bool any = strict;
    for (const auto& [code, cnt] : b.event_counts()) any |= code < setup.step_mask.size() && setup.step_mask[code] != 0;
    read_part[j] = any;
    read_block[static_cast<size_t>(part.whole_block)] |= read_part[j];
  }
  // Over the memory budget, blocks are freed as the scan passes them (ScanRetirer) and each
  // thread takes a block's columns when it reaches its part; otherwise all are taken here.
  std::optional<ScanRetirer> retirer;
  if (scan.tight()) retirer.emplace(scan, snap, pt.size(), slots);
  const PassColumns columns(scan, retirer ? &*retirer : nullptr, &read_block);

  std::vector<PlainFunnelSlot> out(static_cast<size_t>(slots));
  for (PlainFunnelSlot& o : out) o.conv.assign(setup.n, {});
  const uint32_t tile_persons = retirer ? UINT32_MAX : std::max<uint32_t>(1, SequenceScanTuning().tile_persons);
  // Chunks (a slot's conv and reaches only grow), but not under the retirer, which counts one
  // range per slot.
  const int chunks = retirer ? 1 : SequenceScanTuning().person_chunks_per_slot;
  ParallelPersonChunks(pt.size(), slots, chunks, [&](uint32_t p_lo, uint32_t p_hi, int slot) {
    const ScanRetirer::SlotScope slot_scope{retirer ? &*retirer : nullptr, slot};
    if (p_lo >= p_hi) return;
    SlotScanner scanner(setup, &out[static_cast<size_t>(slot)], slot, finish, std::min(tile_persons, p_hi - p_lo));
    PassColumns::Slot cols(columns);
    PersonTileWalk walk(scan, pt, p_lo, p_hi, &read_part);
    if (retirer) walk.OnPartDone([&](size_t j) { retirer->PartDone(slot, j); });
    walk.Run(
        tile_persons, deadline, [&](uint32_t t_lo, uint32_t) { scanner.BeginTile(t_lo); },
        [&](size_t j, size_t first, size_t last) {
          const auto& part = parts[j];
          cols.Reach(j);
          if (part.whole_block >= 0) {
            const Block& b = *blocks[static_cast<size_t>(part.whole_block)];
            const WholeBlockRows rows{cols.cols()[static_cast<size_t>(part.whole_block)]};
            const bool check_range = b.min_ts() < entry_from || b.max_ts() >= scan_to;
            if (strict)
              scanner.Scan<true>(rows, first, last, check_range);
            else
              scanner.Scan<false>(rows, first, last, check_range);
          } else {
            const ListedRows rows{cols.cols().data(), part.rows.data()};
            if (strict)
              scanner.Scan<true>(rows, first, last, true);
            else
              scanner.Scan<false>(rows, first, last, true);
          }
        },
        [&](uint32_t, uint32_t t_hi) { scanner.FinishTile(t_hi); });
  });
  return out;
}

}  // namespace ns
