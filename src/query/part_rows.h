// A part of a PersonOrderScan (person_scan.h) read through three raw columns (event code,
// timestamp, distinct id), for the plain sequence passes (funnel_plain.cc, retention.cc):
// the same accessors over a whole block in place and over a part's (block, row) list, so
// each pass is written once, as a template over the two.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

namespace ns {

// The three columns a plain pass reads, of one block.
struct PartColumns {
  const uint32_t* ev = nullptr;
  const int64_t* ts = nullptr;
  const uint32_t* did = nullptr;
};

// Rows of a part that is one whole block, in stored order.
struct WholeBlockRows {
  PartColumns c;
  uint32_t Ev(size_t i) const { return c.ev[i]; }
  int64_t Ts(size_t i) const { return c.ts[i]; }
  uint32_t Did(size_t i) const { return c.did[i]; }
  void PrefetchEv(size_t i) const { __builtin_prefetch(c.ev + i); }
  void PrefetchStep(size_t i) const {
    __builtin_prefetch(c.ts + i);
    __builtin_prefetch(c.did + i);
  }
};

// Rows of a part merged from several blocks: (block, row) pairs into `cols`.
struct ListedRows {
  const PartColumns* cols;
  const std::pair<uint32_t, uint32_t>* rows;
  uint32_t Ev(size_t i) const { return cols[rows[i].first].ev[rows[i].second]; }
  int64_t Ts(size_t i) const { return cols[rows[i].first].ts[rows[i].second]; }
  uint32_t Did(size_t i) const { return cols[rows[i].first].did[rows[i].second]; }
  void PrefetchEv(size_t) const {}  // scattered rows: nothing worth asking for early
  void PrefetchStep(size_t) const {}
};

}  // namespace ns
