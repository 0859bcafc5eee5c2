// A part of a PersonOrderScan (person_scan.h) read through three raw columns (event code,
// timestamp, distinct id), for the plain sequence passes (funnel_plain.cc, retention.cc):
// the same accessors over a whole block in place and over a part's (block, row) list, so
// each pass is written once, as a template over the two; and where a pass takes those
// columns from (PassColumns).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "query/person_scan.h"
#include "storage/block.h"

namespace ns {

// The three columns a plain pass reads, of one block.
struct PartColumns {
  const uint32_t* ev = nullptr;
  const int64_t* ts = nullptr;
  const uint32_t* did = nullptr;
};

// Rows of a part that is one whole block, in stored order.
struct WholeBlockRows {
  // How far ahead a pass asks for the event codes: a slice of a block is a few thousand
  // rows, too short for the hardware prefetcher to ramp up on each of its columns.
  static constexpr size_t kEvAhead = 256;
  PartColumns c;
  uint32_t Ev(size_t i) const { return c.ev[i]; }
  int64_t Ts(size_t i) const { return c.ts[i]; }
  uint32_t Did(size_t i) const { return c.did[i]; }
  void PrefetchEv(size_t i) const { __builtin_prefetch(c.ev + i); }
  void PrefetchStep(size_t i) const {
    __builtin_prefetch(c.ts + i);
    __builtin_prefetch(c.did + i);
  }
  void PrefetchRow(size_t) const {}  // a pass over every row reads each column in order
};

// Rows of a part merged from several blocks: (block, row) pairs into `cols`. Consecutive
// rows are in different blocks (a day of sealed memtable blocks: one per 16k rows written),
// too many streams for the hardware prefetcher: the passes ask for each row's columns a
// few rows ahead, through the list they already read in order.
struct ListedRows {
  static constexpr size_t kEvAhead = 48;
  const PartColumns* cols;
  const std::pair<uint32_t, uint32_t>* rows;
  uint32_t Ev(size_t i) const { return cols[rows[i].first].ev[rows[i].second]; }
  int64_t Ts(size_t i) const { return cols[rows[i].first].ts[rows[i].second]; }
  uint32_t Did(size_t i) const { return cols[rows[i].first].did[rows[i].second]; }
  void PrefetchEv(size_t i) const { __builtin_prefetch(cols[rows[i].first].ev + rows[i].second); }
  void PrefetchStep(size_t i) const {
    const PartColumns& c = cols[rows[i].first];
    __builtin_prefetch(c.ts + rows[i].second);
    __builtin_prefetch(c.did + rows[i].second);
  }
  void PrefetchRow(size_t i) const {
    PrefetchEv(i);
    PrefetchStep(i);
  }
};

// The three columns of each block a plain pass reads: all taken before its threads start,
// or, in a tight scan (person_scan.h, ScanRetirer), by each thread when its walk reaches a
// part, so that a day not reached yet is not decoded and a day retired is not held.
class PassColumns {
 public:
  // `read_block`, when given, limits the blocks taken up front to those marked.
  PassColumns(const PersonOrderScan& scan, const ScanRetirer* retirer, const std::vector<uint8_t>* read_block = nullptr)
      : scan_(scan), retirer_(retirer), all_(scan.blocks().size()) {
    if (retirer_) return;
    for (size_t b = 0; b < all_.size(); b++)
      if (!read_block || (*read_block)[b]) all_[b] = Of(b);
  }

  // One thread's columns.
  class Slot {
   public:
    explicit Slot(const PassColumns& pass) : pass_(pass) {
      if (pass_.retirer_) own_.resize(pass_.all_.size());
    }
    // Takes part j's blocks' columns (a tight scan); call before reading the part.
    void Reach(size_t j) {
      if (!pass_.retirer_) return;
      for (uint32_t b : pass_.retirer_->PartBlocks(j))
        if (!own_[b].ev) own_[b] = pass_.Of(b);
    }
    const std::vector<PartColumns>& cols() const { return pass_.retirer_ ? own_ : pass_.all_; }

   private:
    const PassColumns& pass_;
    std::vector<PartColumns> own_;
  };

 private:
  PartColumns Of(size_t b) const {
    const Block& blk = *scan_.blocks()[b];
    return {blk.ev().data(), blk.ts().data(), blk.did().data()};
  }

  const PersonOrderScan& scan_;
  const ScanRetirer* retirer_;
  std::vector<PartColumns> all_;
};

}  // namespace ns
