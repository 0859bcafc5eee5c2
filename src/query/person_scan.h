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
// later) are merged into an explicit row order for their day.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
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

  const std::vector<const Block*>& blocks() const { return blocks_; }
  const std::vector<Part>& parts() const { return parts_; }

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
    const size_t n = last - first;
    bits.assign((n + 63) / 64, 0);
    size_t hits = 0;
    const uint32_t* only_begin = nullptr;
    const uint32_t* only_end = nullptr;
    for (uint32_t code : *codes) {
      auto [rb, re] = blk.EventRows(code);
      if (!rb) continue;
      const uint32_t* lo = std::lower_bound(rb, re, static_cast<uint32_t>(first));
      const uint32_t* hi = std::lower_bound(lo, re, static_cast<uint32_t>(last));
      if (lo == hi) continue;
      hits++;
      only_begin = lo;
      only_end = hi;
      for (const uint32_t* q = lo; q < hi; q++) bits[(*q - first) >> 6] |= 1ULL << ((*q - first) & 63);
    }
    if (hits == 1) {  // one event: its positions are already in order
      for (const uint32_t* q = only_begin; q < only_end; q++) fn(b, *q);
      return;
    }
    for (size_t w = 0; w < bits.size(); w++)
      for (uint64_t x = bits[w]; x; x &= x - 1)
        fn(b, static_cast<uint32_t>(first + w * 64 + static_cast<size_t>(__builtin_ctzll(x))));
  }

  static size_t PartSize(const std::vector<const Block*>& blocks, const Part& p) {
    return p.whole_block >= 0 ? blocks[static_cast<size_t>(p.whole_block)]->size() : p.rows.size();
  }
  // First position in the part whose person is >= person (rows are grouped by person).
  size_t LowerBound(const Part& p, uint32_t person, const PersonTable& persons) const;

 private:
  std::vector<const Block*> blocks_;
  std::vector<Part> parts_;
};

// True if the block's rows are sorted by (person under `persons`, ts). Cached per block and
// identity version.
bool BlockSortedByPerson(const Block& b, const PersonTable& persons);

// Runs fn(first_person, last_person, slot) on `slots` disjoint person ranges covering
// [0, persons) in parallel (one thread each; slot 0 on the calling thread).
void ParallelPersonRanges(size_t persons, int slots, const std::function<void(uint32_t, uint32_t, int)>& fn);

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
// state is indexed by `slot`. With a deadline, each range stops between parts once it has
// expired (the caller answers the deadline's status, not what was scanned).
template <typename Tie, typename Classify, typename Group>
void ScanPersonGroups(const PersonOrderScan& scan, const PersonTable& persons, int slots,
                      const std::vector<uint32_t>* codes, Classify&& classify, Group&& group,
                      const Deadline* deadline = nullptr) {
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
    for (const auto& part : scan.parts()) {
      if (deadline && deadline->Expired()) return;
      const size_t first = scan.LowerBound(part, p_lo, persons), last = scan.LowerBound(part, p_hi, persons);
      PersonOrderScan::ForEachRowInWithEvents(scan.blocks(), part, first, last, codes, bits,
                                              [&](uint32_t b, uint32_t i) {
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
                                              });
      flush();
    }
  });
}

}  // namespace ns
