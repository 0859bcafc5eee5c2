// Rows of a snapshot in per-person time order, for streaming sequence operators (funnels,
// retention) that keep per-person state in dense arrays indexed by person id.
//
// The snapshot is cut into parts that are disjoint in time (UTC days) and visited in time
// order; inside a part rows are grouped by person (ascending) and sorted by timestamp, so
// every person's events arrive in time order across the whole scan. Rows with equal
// timestamps come in no particular order: operators that care order ties themselves.
//
// A segment is sorted by (person at flush time, ts). When that order still holds under the
// current identity map (no merge joined two of its persons since), the part is the block
// itself, visited in place: the common case costs one check pass, cached per block. Other
// blocks (memtable blocks, several segments of one day, segments whose persons merged
// later) are merged into an explicit row order for their day, kept between queries per store
// and day so that a query merges only the blocks the day gained since (an ingest's sealed
// memtable rows, a flushed segment), not the whole day again.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "core/deadline.h"
#include "storage/block.h"
#include "storage/event_dict.h"
#include "storage/event_store.h"
#include "storage/person_table.h"

namespace ns {

class PersonOrderScan {
 public:
  struct Part {
    int whole_block = -1;                             // >= 0: all rows of blocks()[whole_block] in stored order
    std::vector<std::pair<uint32_t, uint32_t>> rows;  // otherwise: (block index, row) in order
  };

  // Parts covering every row with ts in [from_ms, to_ms) (parts may hold rows outside it:
  // callers filter by ts).
  PersonOrderScan(const StoreSnapshot& snap, int64_t from_ms, int64_t to_ms);
  // Hands the large row lists back for the next scan's (person_scan.cc, RowBufferPool).
  ~PersonOrderScan();
  PersonOrderScan(const PersonOrderScan&) = delete;
  PersonOrderScan& operator=(const PersonOrderScan&) = delete;

  const std::vector<const Block*>& blocks() const { return blocks_; }
  const std::vector<Part>& parts() const { return parts_; }
  // Whether the blocks' columns would not fit the memory budget together (ScanRetirer). The
  // constructor then retired each block after reading its person column (its order check):
  // over the budget, a block's decoded columns may be freed by building a tight scan, and
  // decode again when read.
  bool tight() const { return tight_; }

  // Calls fn(block_index, row) for every row of the part in order.
  template <typename Fn>
  static void ForEachRow(const std::vector<const Block*>& blocks, const Part& p, Fn&& fn) {
    ForEachRowIn(blocks, p, 0, PartSize(blocks, p), fn);
  }
  // Calls fn(block_index, row) for the part's rows [first, last) (positions in the part).
  template <typename Fn>
  static void ForEachRowIn(const std::vector<const Block*>& blocks, const Part& p, size_t first, size_t last, Fn&& fn) {
    if (p.whole_block >= 0) {
      const uint32_t b = static_cast<uint32_t>(p.whole_block);
      for (size_t i = first; i < last; i++) fn(b, static_cast<uint32_t>(i));
    } else {
      for (size_t j = first; j < last; j++) fn(p.rows[j].first, p.rows[j].second);
    }
  }
  // Rows of a whole-block part within positions [first, last), given as the ascending
  // position lists of several event codes, visited in position order: through a bitmap of
  // the positions (`bits`, caller-owned scratch), or as the one list itself when only one
  // code has rows there (already in order).
  class MarkedRows {
   public:
    MarkedRows(std::vector<uint64_t>& bits, size_t first, size_t last) : bits_(bits), first_(first) {
      bits_.assign((last - first + 63) / 64, 0);
    }
    void Add(const uint32_t* lo, const uint32_t* hi) {
      if (lo == hi) return;
      lists_++;
      only_begin_ = lo;
      only_end_ = hi;
      for (const uint32_t* q = lo; q < hi; q++) bits_[(*q - first_) >> 6] |= 1ULL << ((*q - first_) & 63);
    }
    template <typename Fn>
    void Visit(uint32_t b, Fn&& fn) const {
      if (lists_ == 1) {
        for (const uint32_t* q = only_begin_; q < only_end_; q++) fn(b, *q);
        return;
      }
      for (size_t w = 0; w < bits_.size(); w++)
        for (uint64_t x = bits_[w]; x; x &= x - 1)
          fn(b, static_cast<uint32_t>(first_ + w * 64 + static_cast<size_t>(__builtin_ctzll(x))));
    }

   private:
    std::vector<uint64_t>& bits_;
    const size_t first_;
    size_t lists_ = 0;
    const uint32_t* only_begin_ = nullptr;
    const uint32_t* only_end_ = nullptr;
  };

  // Like ForEachRowIn, but visits only rows whose event code is in `codes` (ascending
  // positions), using each block's event index; codes == nullptr visits every row.
  // `bits` is caller-owned scratch space.
  template <typename Fn>
  static void ForEachRowInWithEvents(const std::vector<const Block*>& blocks, const Part& p, size_t first, size_t last,
                                     const std::vector<uint32_t>* codes, std::vector<uint64_t>& bits, Fn&& fn) {
    if (!codes || p.whole_block < 0 || last <= first) {
      ForEachRowIn(blocks, p, first, last, fn);
      return;
    }
    const uint32_t b = static_cast<uint32_t>(p.whole_block);
    const Block& blk = *blocks[b];
    MarkedRows marks(bits, first, last);
    for (uint32_t code : *codes) {
      auto [rb, re] = blk.EventRows(code);
      if (!rb) continue;
      const uint32_t* lo = std::lower_bound(rb, re, static_cast<uint32_t>(first));
      marks.Add(lo, std::lower_bound(lo, re, static_cast<uint32_t>(last)));
    }
    marks.Visit(b, fn);
  }

  // A code's event-index rows in a whole-block part, from `pos` on: visits over consecutive
  // position ranges of the part advance `pos`, so each row list is read once per scan and
  // the block's index is looked up once per part, not once per range visited.
  struct EventCursor {
    const uint32_t* pos = nullptr;
    const uint32_t* end = nullptr;
  };
  // Like ForEachRowInWithEvents over a whole-block part, with the codes' cursors (ncodes of
  // them, every row before `first` already consumed).
  template <typename Fn>
  static void ForEachRowInWithCursors(uint32_t b, size_t first, size_t last, EventCursor* cursors, size_t ncodes,
                                      std::vector<uint64_t>& bits, Fn&& fn) {
    MarkedRows marks(bits, first, last);
    for (size_t c = 0; c < ncodes; c++) {
      EventCursor& cur = cursors[c];
      const uint32_t* lo = cur.pos;
      const uint32_t* hi = lo;
      while (hi < cur.end && *hi < last) hi++;  // the tile's rows of this code: few, read anyway below
      cur.pos = hi;
      marks.Add(lo, hi);
    }
    marks.Visit(b, fn);
  }

  static size_t PartSize(const std::vector<const Block*>& blocks, const Part& p) {
    return p.whole_block >= 0 ? blocks[static_cast<size_t>(p.whole_block)]->size() : p.rows.size();
  }
  // First position in the part whose person is >= person (rows are grouped by person).
  size_t LowerBound(const Part& p, uint32_t person, const PersonTable& persons) const;
  // The same within positions [from, to), searched outward from `from` (galloping): cheap
  // when the answer is near `from`, as for consecutive tiles of persons.
  size_t LowerBoundFrom(const Part& p, size_t from, size_t to, uint32_t person, const PersonTable& persons) const;

 private:
  uint32_t PersonAt(const Part& p, size_t pos, const PersonTable& persons) const;

  std::vector<const Block*> blocks_;
  std::vector<Part> parts_;
  bool tight_ = false;
};

// True if the block's rows are sorted by (person under `persons`, ts). Cached per block and
// identity version.
bool BlockSortedByPerson(const Block& b, const PersonTable& persons);

// Runs fn(first_person, last_person, slot) on `slots` disjoint person ranges covering
// [0, persons) in parallel (one thread each; slot 0 on the calling thread).
void ParallelPersonRanges(size_t persons, int slots, const std::function<void(uint32_t, uint32_t, int)>& fn);
// ParallelPersonRanges with the range cut in slots * chunks_per_slot chunks that the threads
// take in order as they become free: a slot may run fn several times (on increasing ranges),
// so fn must add to its slot's state, not reset it. The chunks keep a query's threads busy to
// its end when one runs late (its core shared with the ingest, or its persons with more
// rows), where equal halves left the early one idle. chunks_per_slot 1: ParallelPersonRanges.
void ParallelPersonChunks(size_t persons, int slots, int chunks_per_slot,
                          const std::function<void(uint32_t, uint32_t, int)>& fn);
// How many ranges ParallelPersonRanges runs (one when there are few persons).
int PersonRangeCount(size_t persons, int slots);

// Threads the query operators use: the machine's cores, at most 8.
int QueryThreads();

// The per-person streaming driver of sequence operators (funnels, retention, and the
// person-level models to come). Persons are split into `slots` ranges run in parallel; each
// range walks every part of `scan` in person order (only rows whose event code is in
// `codes`, when given). `classify(block, row, &person, &ts, &tie)` keeps a row (false skips
// it) and says whose it is and when; the kept rows of one (person, timestamp) are collected
// and `group(slot, person, ts, ties)` is called once per such group, in time order for each
// person (ties is not empty; the callee may reorder it). A person is only ever seen by one
// slot, so per-person state can live in the caller's dense arrays without locks; per-slot
// state is indexed by `slot`. No order across persons is promised. With a deadline, each
// range stops between parts once it has expired (the caller answers the deadline's status,
// not what was scanned). `tile_done(slot, first_person, last_person)`, when given, is
// called once the slot has seen every row of the persons [first, last) (a tile, below):
// their state is final and may be finished and reused.
//
// Why it is fast: a range is walked in tiles of kScanTilePersons persons, every part over
// one tile before the next tile (a cursor per part), rather than every part over the whole
// range. A person's state is then touched by all its days while the tile's states are in
// the core's cache, where day after day over the whole range it was a cache miss per person
// and day. Each part is still read sequentially (a slice per tile), and a person's rows
// still come in time order (parts are in time order).
inline constexpr uint32_t kScanTilePersons = 4096;

// How the sequence operators scan; tests set the plain variant (one tile per range, no
// operator shortcuts) to check the fast one against it. Process-wide; not for concurrent
// change.
struct SequenceScanOptions {
  uint32_t tile_persons = kScanTilePersons;
  bool fast_paths = true;  // the operators' own shortcuts (e.g. retention's anchored rows)
  // Keep each multi-block day's merged row order between queries and merge only the blocks
  // a day gained since (person_scan.cc, DayOrder); off: every query merges the day's runs.
  bool keep_day_orders = true;
  // A kept day order is two sorted levels: the rows added lately go into a small `recent`
  // level, which is merged into the large `base` once it holds more than 1/divisor of it
  // (person_scan.cc, DayOrder). Tests set other divisors to exercise both levels.
  uint32_t recent_level_divisor = 8;
  // Person chunks per thread of the passes that take them (the plain funnel, retention;
  // ParallelPersonChunks): enough for a late thread's share to be picked up by the other,
  // few enough for the per-chunk set-up (a search per part) to stay small.
  int person_chunks_per_slot = 4;
};
SequenceScanOptions& SequenceScanTuning();

// The walk every per-person pass shares (ScanPersonGroups below, and the passes with their
// own row loops: commerce, the plain funnel, plain retention): one slot's persons
// [p_lo, p_hi) tile by tile, every part over one tile before the next tile, a cursor per
// part. `read_part`, when given, skips the parts whose entry is 0.
class PersonTileWalk {
 public:
  PersonTileWalk(const PersonOrderScan& scan, const PersonTable& persons, uint32_t p_lo, uint32_t p_hi,
                 const std::vector<uint8_t>* read_part = nullptr)
      : scan_(scan), persons_(persons), p_lo_(p_lo), p_hi_(p_hi), read_part_(read_part) {
    const size_t n = scan.parts().size();
    cursor_.resize(n);
    range_end_.resize(n);
    located_.assign(n, 0);
  }
  // Part j's positions of the slot's persons, before the first tile. Found when first asked
  // for (a search of the part's person column), so a walk that frees parts as it passes them
  // (ScanRetirer) does not read every part's column before the first.
  size_t first(size_t j) { return Locate(j), cursor_[j]; }
  size_t end(size_t j) { return Locate(j), range_end_[j]; }

  // Called with j once this walk has passed part j for good: after the last tile's slice of
  // it, or then at once for a part it does not read (ScanRetirer::PartDone).
  void OnPartDone(std::function<void(size_t)> fn) { part_done_ = std::move(fn); }

  // For each tile [t_lo, t_hi): begin_tile(t_lo, t_hi), then slice(j, first, last) for every
  // part read with rows of the tile's persons (positions [first, last), not empty), then
  // end_tile(t_lo, t_hi). Returns false at once when the deadline has expired (checked
  // before each part): the caller answers the deadline's status, not what was scanned.
  template <typename BeginTile, typename Slice, typename EndTile>
  bool Run(uint32_t tile_persons, const Deadline* deadline, BeginTile&& begin_tile, Slice&& slice, EndTile&& end_tile) {
    const auto& parts = scan_.parts();
    for (uint32_t t_lo = p_lo_; t_lo < p_hi_;) {
      const uint32_t t_hi = p_hi_ - t_lo <= tile_persons ? p_hi_ : t_lo + tile_persons;
      const bool last_tile = t_hi == p_hi_;
      begin_tile(t_lo, t_hi);
      for (size_t j = 0; j < parts.size(); j++) {
        if (!Reads(j)) {
          if (last_tile && part_done_) part_done_(j);
          continue;
        }
        if (deadline && deadline->Expired()) return false;
        Locate(j);
        const size_t first = cursor_[j];
        const size_t last =
            last_tile ? range_end_[j] : scan_.LowerBoundFrom(parts[j], first, range_end_[j], t_hi, persons_);
        cursor_[j] = last;
        if (first != last) slice(j, first, last);
        if (last_tile && part_done_) part_done_(j);
      }
      end_tile(t_lo, t_hi);
      t_lo = t_hi;
    }
    return true;
  }

 private:
  bool Reads(size_t j) const { return !read_part_ || (*read_part_)[j]; }
  void Locate(size_t j) {
    if (located_[j]) return;
    located_[j] = 1;
    cursor_[j] = scan_.LowerBound(scan_.parts()[j], p_lo_, persons_);
    range_end_[j] = scan_.LowerBound(scan_.parts()[j], p_hi_, persons_);
  }

  const PersonOrderScan& scan_;
  const PersonTable& persons_;
  const uint32_t p_lo_, p_hi_;
  const std::vector<uint8_t>* read_part_;
  std::vector<size_t> cursor_, range_end_;
  std::vector<uint8_t> located_;
  std::function<void(size_t)> part_done_;
};

// Frees a per-person scan's block columns as the scan passes them, when they would not fit
// the memory budget together (issue 15: the budget holds inside one query, so a range that
// decodes to more than memory still runs). Such a tight scan walks each slot's persons as
// one tile: every slot then goes through the parts once, in time order, day by day; when
// every slot has passed a part, its blocks that no later part reads are retired
// (Block::Retire: freed while the cache is over its budget). The per-person state is then
// the slot's whole range rather than a tile's (a plain funnel's is 16 bytes a step and 4
// more a person, retention's 24), outside the budget; operators take a block's columns when
// they reach its part, not before.
class ScanRetirer {
 public:
  // Decoded bytes a sequence scan reads per row (ts 8, did 4, ev 4, event index 4).
  static constexpr uint64_t kBytesPerRow = 20;

  // For a scan run by ParallelPersonRanges(persons, slots, ...).
  ScanRetirer(const PersonOrderScan& scan, const StoreSnapshot& snap, size_t persons, int slots);
  // Retires every block of the scan now: setting the scan up read their person columns.
  void RetireAll() const;
  // Called by each slot once it has passed part j for good (PersonTileWalk::OnPartDone).
  // Persons' rows are spread unevenly over days (early days hold only early persons), so a
  // slot can run far ahead of another, and every part between them stays decoded: a slot
  // waits here while it is more than kAhead parts ahead of the slowest.
  void PartDone(int slot, size_t j);
  // Called by each slot when its walk ends (done, or stopped by the deadline).
  void SlotDone(int slot);
  static constexpr size_t kAhead = 2;
  // Calls SlotDone when a slot's walk goes out of scope, however it ends.
  struct SlotScope {
    ScanRetirer* retirer;
    int slot;
    ~SlotScope() {
      if (retirer) retirer->SlotDone(slot);
    }
  };
  // The blocks part j reads rows of.
  const std::vector<uint32_t>& PartBlocks(size_t j) const { return part_blocks_[j]; }

 private:
  const PersonOrderScan& scan_;
  const uint64_t reader_;
  std::vector<std::vector<uint32_t>> part_blocks_;
  std::unique_ptr<std::atomic<int>[]> part_left_;   // slots yet to pass part j
  std::unique_ptr<std::atomic<int>[]> block_left_;  // parts yet to be passed that read block b
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<size_t> passed_;  // per slot: parts passed for good; guarded by mu_
};

struct NoTileDone {
  void operator()(int, uint32_t, uint32_t) const {}
};

template <typename Tie, typename Classify, typename Group, typename TileDone = NoTileDone>
void ScanPersonGroups(const PersonOrderScan& scan, const PersonTable& persons, int slots,
                      const std::vector<uint32_t>* codes, Classify&& classify, Group&& group,
                      const Deadline* deadline = nullptr, TileDone&& tile_done = TileDone()) {
  const uint32_t tile_persons = std::max<uint32_t>(1, SequenceScanTuning().tile_persons);
  ParallelPersonRanges(persons.size(), slots, [&](uint32_t p_lo, uint32_t p_hi, int slot) {
    std::vector<uint64_t> bits;
    std::vector<Tie> ties;
    uint32_t cur_person = UINT32_MAX;
    int64_t cur_ts = INT64_MIN;
    auto flush = [&] {
      if (ties.empty()) return;
      group(slot, cur_person, cur_ts, ties);
      ties.clear();
    };
    const auto& parts = scan.parts();
    PersonTileWalk walk(scan, persons, p_lo, p_hi);
    // With codes: per whole-block part, each code's event-index rows from the range's start.
    const size_t ncodes = codes ? codes->size() : 0;
    std::vector<PersonOrderScan::EventCursor> event_cursors(parts.size() * ncodes);
    for (size_t j = 0; j < parts.size(); j++) {
      if (!ncodes || parts[j].whole_block < 0) continue;
      const Block& blk = *scan.blocks()[static_cast<size_t>(parts[j].whole_block)];
      for (size_t c = 0; c < ncodes; c++) {
        auto [rb, re] = blk.EventRows((*codes)[c]);
        if (!rb) continue;
        auto& cur = event_cursors[j * ncodes + c];
        cur.pos = std::lower_bound(rb, re, static_cast<uint32_t>(walk.first(j)));
        cur.end = std::lower_bound(cur.pos, re, static_cast<uint32_t>(walk.end(j)));
      }
    }
    auto visit = [&](uint32_t b, uint32_t i) {
      uint32_t person;
      int64_t ts;
      Tie tie;
      if (!classify(b, i, &person, &ts, &tie)) return;
      if (person != cur_person || ts != cur_ts) {
        flush();
        cur_person = person;
        cur_ts = ts;
      }
      ties.push_back(tie);
    };
    walk.Run(
        tile_persons, deadline, [](uint32_t, uint32_t) {},
        [&](size_t j, size_t first, size_t last) {
          const auto& part = parts[j];
          if (ncodes && part.whole_block >= 0)
            PersonOrderScan::ForEachRowInWithCursors(static_cast<uint32_t>(part.whole_block), first, last,
                                                     &event_cursors[j * ncodes], ncodes, bits, visit);
          else
            PersonOrderScan::ForEachRowInWithEvents(scan.blocks(), part, first, last, codes, bits, visit);
          flush();
        },
        [&](uint32_t t_lo, uint32_t t_hi) { tile_done(slot, t_lo, t_hi); });
  });
}

}  // namespace ns
